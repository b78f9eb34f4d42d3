"""API: campaigns, their sequence (steps and A/B variants), launch / pause / resume, the
pre-launch checks, the preview and the numbers.

The sequence is edited through sub-routes, one step or variant at a time:
`POST /campaigns/{id}/steps/` appends a step, `PATCH|DELETE /campaigns/{id}/steps/{position}/`
changes or removes one, `POST /campaigns/{id}/steps/{position}/variants/` adds a variant (B, C
...), `PATCH|DELETE /campaigns/{id}/steps/{position}/variants/{label}/` edits or removes one.
Reads are open to every member; changes need an owner or admin (as on the pages).
"""

from typing import Any

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from accounts.api.views import api_membership_for_write, api_memberships
from accounts.http import api_user
from accounts.models import Membership, Role
from campaigns.models import Campaign, CampaignStep, Lead, LeadList, OutOfOffice, StepVariant
from campaigns.selectors import campaigns as selectors
from campaigns.services import campaigns as services
from campaigns.services.checks import campaign_checks
from campaigns.services.preview import campaign_preview
from config.errors import PermissionDenied
from sending.models import Mailbox
from tracking.selectors import tracking_stats

ERROR_REF = {"$ref": "#/components/schemas/Error"}
CONFLICT = OpenApiResponse(
    response=ERROR_REF,
    description="The campaign is not in a state that allows this (e.g. pausing a draft).",
)


# --- serializers ---------------------------------------------------------------------------------


@extend_schema_field(
    {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$", "example": "09:00"}
)
class ClockField(serializers.TimeField):
    """A local time of day as HH:MM (the window's hours have no zone of their own)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%H:%M", input_formats=["%H:%M", "%H:%M:%S"], **kwargs)


class VariantSerializer(serializers.ModelSerializer):
    class Meta:
        model = StepVariant
        fields = ["label", "subject", "body", "active"]
        read_only_fields = fields


class StepSerializer(serializers.ModelSerializer):
    variants = VariantSerializer(many=True, read_only=True)

    class Meta:
        model = CampaignStep
        fields = ["position", "delay_days", "variants"]
        read_only_fields = fields


class CampaignSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    workspace = serializers.CharField(source="workspace.public_id", read_only=True)
    status_reason = serializers.CharField(
        read_only=True, help_text="Why it is paused when bounce protection paused it."
    )
    paused_by_system = serializers.BooleanField(
        read_only=True,
        help_text="Paused by bounce protection: resuming needs `acknowledge: true`.",
    )
    lead_count = serializers.IntegerField(
        read_only=True, help_text="Enrolled leads (a draft: active leads on its lists)."
    )
    sent_count = serializers.IntegerField(read_only=True)
    step_count = serializers.IntegerField(read_only=True)
    mailbox_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Campaign
        fields = [
            "id",
            "workspace",
            "name",
            "status",
            "status_reason",
            "paused_by_system",
            "lead_count",
            "sent_count",
            "step_count",
            "mailbox_count",
            "start_at",
            "launched_at",
            "created_at",
        ]
        read_only_fields = fields


class CampaignDetailSerializer(CampaignSerializer):
    mailboxes = serializers.SerializerMethodField(help_text="Ids of the sending mailboxes.")
    lead_lists = serializers.SerializerMethodField(help_text="Public ids of the lead lists.")
    steps = StepSerializer(many=True, read_only=True)
    window_start = ClockField(read_only=True)
    window_end = ClockField(read_only=True)

    class Meta(CampaignSerializer.Meta):
        fields = [
            *CampaignSerializer.Meta.fields,
            "time_zone",
            "use_lead_time_zone",
            "send_days",
            "window_start",
            "window_end",
            "holiday_country",
            "daily_limit",
            "daily_new_leads",
            "stop_on_reply",
            "stop_on_auto_reply",
            "out_of_office",
            "provider_matching",
            "mailboxes",
            "lead_lists",
            "steps",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_mailboxes(self, campaign: Campaign) -> list[int]:
        return sorted(mailbox.pk for mailbox in campaign.mailboxes.all())

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_lead_lists(self, campaign: Campaign) -> list[str]:
        return sorted(item.public_id for item in campaign.lead_lists.all())


class CampaignCreateSerializer(serializers.Serializer):
    name = serializers.CharField(allow_blank=True, help_text="At most 120 characters.")
    workspace = serializers.CharField(
        required=False, help_text="Workspace public id (not needed with a token)."
    )


class CampaignSettingsSerializer(serializers.Serializer):
    """Every field is optional; only those given change."""

    name = serializers.CharField(required=False, allow_blank=True)
    time_zone = serializers.CharField(required=False, help_text="An IANA zone: Europe/Berlin.")
    use_lead_time_zone = serializers.BooleanField(
        required=False, help_text="Send in each lead's own hours when its zone is known."
    )
    send_days = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="0 = Monday ... 6 = Sunday."
    )
    window_start = ClockField(required=False, help_text="Local time the window opens, HH:MM.")
    window_end = ClockField(required=False, help_text="Local time it closes, HH:MM.")
    holiday_country = serializers.CharField(
        required=False, allow_blank=True, help_text="ISO country code; empty for none."
    )
    daily_limit = serializers.IntegerField(required=False)
    daily_new_leads = serializers.IntegerField(required=False)
    stop_on_reply = serializers.BooleanField(required=False)
    stop_on_auto_reply = serializers.BooleanField(
        required=False, help_text="Stop a lead's sequence on an automatic reply too."
    )
    out_of_office = serializers.ChoiceField(
        choices=OutOfOffice.choices,
        required=False,
        help_text="resume: hold the lead until its return date, then carry on; stop: end it.",
    )
    provider_matching = serializers.BooleanField(required=False)
    start_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Scheduled start; null to start at launch."
    )
    mailboxes = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="Mailbox ids."
    )
    lead_lists = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Lead list public ids."
    )


class StepCreateSerializer(serializers.Serializer):
    delay_days = serializers.IntegerField(
        required=False, default=2, help_text="Days after the previous step (1 to 365)."
    )


class StepUpdateSerializer(serializers.Serializer):
    delay_days = serializers.IntegerField(help_text="Days after the previous step (1 to 365).")


class VariantWriteSerializer(serializers.Serializer):
    subject = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Empty on a follow-up: a reply in the thread ('Re: ' + the first subject).",
    )
    body = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="Liquid merge fields and spintax; must contain {{ unsubscribe_url }}.",
    )
    active = serializers.BooleanField(required=False)


class LaunchSerializer(serializers.Serializer):
    acknowledge_warnings = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Launch despite the warnings of GET checks/ (blocking problems still stop it).",
    )


class ResumeSerializer(serializers.Serializer):
    acknowledge = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Needed after a bounce-protection pause: you have acted on its reason.",
    )


class CheckSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    step = serializers.IntegerField(allow_null=True)
    variant = serializers.CharField(allow_null=True)
    link_hint = serializers.CharField(
        allow_blank=True, help_text="steps, mailboxes, leads, window or billing."
    )


class CheckReportSerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text="Nothing blocks the launch.")
    lead_count = serializers.IntegerField()
    blocking = CheckSerializer(many=True)
    warnings = CheckSerializer(many=True)


class NumbersSerializer(serializers.Serializer):
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField()
    bounced = serializers.IntegerField()
    opened = serializers.IntegerField(help_text="Opened by a person (machine opens left out).")
    clicked = serializers.IntegerField(help_text="Messages with at least one human click.")
    replied = serializers.IntegerField()
    positive = serializers.IntegerField(help_text="Messages with a reply labelled interested.")
    unsubscribed = serializers.IntegerField()
    delivery_rate = serializers.FloatField(allow_null=True, help_text="Percent of sent.")
    bounce_rate = serializers.FloatField(allow_null=True)
    open_rate = serializers.FloatField(allow_null=True)
    click_rate = serializers.FloatField(allow_null=True)
    reply_rate = serializers.FloatField(allow_null=True)
    positive_rate = serializers.FloatField(allow_null=True)
    unsubscribe_rate = serializers.FloatField(allow_null=True)


class VariantStatsSerializer(serializers.ModelSerializer):
    numbers = NumbersSerializer(read_only=True)

    class Meta:
        model = StepVariant
        fields = ["label", "subject", "active", "numbers"]
        read_only_fields = fields


class StepStatsSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    delay_days = serializers.IntegerField()
    numbers = NumbersSerializer()
    variants = VariantStatsSerializer(many=True)


class DaySerializer(serializers.Serializer):
    day = serializers.DateField()
    sent = serializers.IntegerField()
    replied = serializers.IntegerField(help_text="Human replies received that day.")


class LeadStatesSerializer(serializers.Serializer):
    waiting = serializers.IntegerField()
    finished = serializers.IntegerField()
    stopped = serializers.IntegerField()


class StatsSerializer(serializers.Serializer):
    totals = NumbersSerializer()
    steps = StepStatsSerializer(many=True)
    daily = DaySerializer(many=True, help_text="The last 30 days in the campaign's time zone.")
    leads = LeadStatesSerializer()
    tracking = serializers.JSONField(
        help_text="Unique human opens, machine opens, clicks and clickers with rates, in total "
        "and per step and variant (opens by proxies and scanners are not in the open rate)."
    )
    replies = serializers.JSONField(
        help_text="Sent messages that got a human reply, and a reply labelled interested "
        "(the same as totals.replied and totals.positive)."
    )


class PreviewQuerySerializer(serializers.Serializer):
    step = serializers.IntegerField(required=False, default=1, min_value=1, max_value=100)
    variant = serializers.CharField(required=False, default="A", max_length=2)
    lead = serializers.CharField(
        required=False, max_length=32, help_text="A lead's public id; default: the first lead."
    )


class PreviewSerializer(serializers.Serializer):
    subject = serializers.CharField(allow_blank=True)
    body = serializers.CharField(allow_blank=True)
    missing_fields = serializers.ListField(child=serializers.CharField())
    problems = serializers.ListField(child=serializers.CharField())
    lead_email = serializers.CharField(allow_blank=True, help_text="Empty: sample values.")
    sender = serializers.CharField(allow_blank=True)


# --- views ---------------------------------------------------------------------------------------

SETTINGS_RENAMES = {"mailboxes": "mailbox_ids", "lead_lists": "lead_list_public_ids"}


def _numbers(line: selectors.StatLine) -> dict[str, Any]:
    return line.as_dict()


class CampaignViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Campaigns of the workspaces this request may see (a token: its own workspace)."""

    serializer_class = CampaignSerializer
    queryset = Campaign.objects.none()
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Campaign]:
        workspace_ids = api_memberships(self.request).values("workspace_id")
        campaigns = selectors.campaign_list_in(workspace_ids=workspace_ids).select_related(
            "workspace"
        )
        if self.action != "list":
            campaigns = campaigns.prefetch_related(
                Prefetch(
                    "steps",
                    queryset=CampaignStep.objects.order_by("position").prefetch_related(
                        Prefetch("variants", queryset=StepVariant.objects.order_by("label"))
                    ),
                ),
                Prefetch("mailboxes", queryset=Mailbox.objects.only("pk")),
                Prefetch("lead_lists", queryset=LeadList.objects.only("pk", "public_id")),
            )
        return campaigns

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        return CampaignSerializer if self.action == "list" else CampaignDetailSerializer

    def _managed(self) -> Campaign:
        """The campaign in the URL, for a change: owners and admins only."""
        campaign = self.get_object()
        membership = Membership.objects.filter(
            workspace_id=campaign.workspace_id, user=api_user(self.request)
        ).first()
        if membership is None or not membership.has_role(Role.ADMIN):
            raise PermissionDenied("Only owners and admins can change campaigns.")
        return campaign

    def _detail(self, campaign: Campaign, code: int = status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=campaign.pk)
        return Response(CampaignDetailSerializer(fresh).data, status=code)

    def _step(self, campaign: Campaign, position: str) -> CampaignStep:
        step = CampaignStep.objects.filter(campaign=campaign, position=int(position)).first()
        if step is None:
            raise NotFound(f"The campaign has no step {position}.")
        return step

    def _variant(self, step: CampaignStep, label: str) -> StepVariant:
        variant = StepVariant.objects.filter(step=step, label=label.upper()).first()
        if variant is None:
            raise NotFound(f"Step {step.position} has no variant {label}.")
        return variant

    @extend_schema(request=CampaignCreateSerializer, responses={201: CampaignDetailSerializer})
    def create(self, request: Request) -> Response:
        """Create a draft with one step and a first message to edit."""
        data = CampaignCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = api_membership_for_write(request, data.validated_data.get("workspace"))
        if not membership.has_role(Role.ADMIN):
            raise PermissionDenied("Only owners and admins can create campaigns.")
        campaign = services.campaign_create(
            workspace=membership.workspace,
            actor=api_user(request),
            name=data.validated_data["name"],
        )
        return self._detail(campaign, status.HTTP_201_CREATED)

    @extend_schema(request=CampaignSettingsSerializer, responses=CampaignDetailSerializer)
    def partial_update(self, request: Request, id: str) -> Response:
        """Change settings: name, window, caps, schedule, mailboxes, lists. Lists added to a
        launched campaign are enrolled at once."""
        campaign = self._managed()
        data = CampaignSettingsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = {SETTINGS_RENAMES.get(k, k): v for k, v in data.validated_data.items()}
        services.campaign_settings_update(campaign=campaign, actor=api_user(request), data=changes)
        return self._detail(campaign)

    @extend_schema(responses={204: None, 409: CONFLICT})
    def destroy(self, request: Request, id: str) -> Response:
        """Delete a draft, paused or completed campaign (pause a running one first)."""
        services.campaign_delete(campaign=self._managed(), actor=api_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    # --- sequence ---

    @extend_schema(request=StepCreateSerializer, responses={201: StepSerializer})
    @action(detail=True, methods=["post"], url_path="steps")
    def steps(self, request: Request, id: str) -> Response:
        """Append a follow-up step (variant A replies in the thread)."""
        campaign = self._managed()
        data = StepCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        step = services.campaign_step_add(
            campaign=campaign, actor=api_user(request), delay_days=data.validated_data["delay_days"]
        )
        return Response(StepSerializer(step).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=StepUpdateSerializer, responses=StepSerializer)
    @action(detail=True, methods=["patch"], url_path=r"steps/(?P<position>[0-9]{1,4})")
    def step(self, request: Request, id: str, position: str) -> Response:
        """Change how many days the step waits after the one before it."""
        step = self._step(self._managed(), position)
        data = StepUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        step = services.campaign_step_update(
            step=step, actor=api_user(request), delay_days=data.validated_data["delay_days"]
        )
        return Response(StepSerializer(step).data)

    @extend_schema(request=None, responses={204: None, 409: CONFLICT})
    @step.mapping.delete
    def step_remove(self, request: Request, id: str, position: str) -> Response:
        """Remove a step nobody was sent; the later ones move up (not the last step)."""
        step = self._step(self._managed(), position)
        services.campaign_step_remove(step=step, actor=api_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=VariantWriteSerializer, responses={201: VariantSerializer})
    @action(detail=True, methods=["post"], url_path=r"steps/(?P<position>[0-9]{1,4})/variants")
    def variants(self, request: Request, id: str, position: str) -> Response:
        """Add an A/B variant to the step (the next label: B, C ...; at most 5)."""
        step = self._step(self._managed(), position)
        data = VariantWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        variant = services.step_variant_save(
            step=step,
            actor=api_user(request),
            variant=None,
            subject=values.get("subject", ""),
            body=values.get("body", ""),
            active=values.get("active", True),
        )
        return Response(VariantSerializer(variant).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=VariantWriteSerializer, responses=VariantSerializer)
    @action(
        detail=True,
        methods=["patch"],
        url_path=r"steps/(?P<position>[0-9]{1,4})/variants/(?P<label>[A-Za-z]{1,2})",
    )
    def variant(self, request: Request, id: str, position: str, label: str) -> Response:
        """Edit a variant's subject, body or whether it is on (fields not given stay)."""
        variant = self._variant(self._step(self._managed(), position), label)
        data = VariantWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        variant = services.step_variant_save(
            step=variant.step,
            actor=api_user(request),
            variant=variant,
            subject=values.get("subject", variant.subject),
            body=values.get("body", variant.body),
            active=values.get("active", variant.active),
        )
        return Response(VariantSerializer(variant).data)

    @extend_schema(request=None, responses={204: None, 409: CONFLICT})
    @variant.mapping.delete
    def variant_remove(self, request: Request, id: str, position: str, label: str) -> Response:
        """Remove a variant nobody was sent (turn a sent one off instead)."""
        variant = self._variant(self._step(self._managed(), position), label)
        services.step_variant_remove(variant=variant, actor=api_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    # --- lifecycle ---

    @extend_schema(
        request=LaunchSerializer, responses={200: CampaignDetailSerializer, 409: CONFLICT}
    )
    @action(detail=True, methods=["post"])
    def launch(self, request: Request, id: str) -> Response:
        """Run the checks and start the campaign (or schedule it for `start_at`). Blocking
        problems answer 400 `campaign_checks_failed`; warnings not acknowledged answer 400
        `campaign_checks_warn`; each is listed in `fields`."""
        campaign = self._managed()
        data = LaunchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.campaign_launch(
            campaign=campaign,
            actor=api_user(request),
            acknowledge_warnings=data.validated_data["acknowledge_warnings"],
        )
        return self._detail(campaign)

    @extend_schema(request=None, responses={200: CampaignDetailSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, id: str) -> Response:
        """Stop sending; leads keep their place in the sequence."""
        campaign = self._managed()
        services.campaign_pause(campaign=campaign, actor=api_user(request))
        return self._detail(campaign)

    @extend_schema(
        request=ResumeSerializer, responses={200: CampaignDetailSerializer, 409: CONFLICT}
    )
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, id: str) -> Response:
        """Send again. After a bounce-protection pause, `acknowledge: true` is needed (else 400
        `campaign_resume_needs_ack`, with the reason)."""
        campaign = self._managed()
        data = ResumeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.campaign_resume(
            campaign=campaign,
            actor=api_user(request),
            acknowledge=data.validated_data["acknowledge"],
        )
        return self._detail(campaign)

    # --- reads ---

    @extend_schema(responses=CheckReportSerializer)
    @action(detail=True, methods=["get"], pagination_class=None)
    def checks(self, request: Request, id: str) -> Response:
        """What blocks the launch and what to know first, as sentences."""
        report = campaign_checks(campaign=self.get_object())
        return Response(
            {
                "ok": report.ok,
                "lead_count": report.lead_count,
                "blocking": [check.as_dict() for check in report.blocking],
                "warnings": [check.as_dict() for check in report.warnings],
            }
        )

    @extend_schema(responses=StatsSerializer)
    @action(detail=True, methods=["get"], pagination_class=None)
    def stats(self, request: Request, id: str) -> Response:
        """Sent, delivered, bounced, opened, clicked, replied, interested, unsubscribed: in
        total, per step and variant, and sent and replies per day for the last 30 days."""
        campaign = self.get_object()
        stats = selectors.campaign_stats(campaign=campaign)
        return Response(
            {
                "totals": _numbers(stats.totals),
                "steps": [
                    {
                        "position": step.position,
                        "delay_days": step.delay_days,
                        "numbers": _numbers(step.numbers),
                        "variants": [
                            {
                                "label": v.label,
                                "subject": v.subject,
                                "active": v.active,
                                "numbers": _numbers(v.numbers),
                            }
                            for v in step.variants
                        ],
                    }
                    for step in stats.steps
                ],
                "daily": [point._asdict() for point in stats.daily],
                "leads": stats.leads,
                "tracking": tracking_stats(campaign=campaign).as_dict(),
                "replies": {"replied": stats.totals.replied, "positive": stats.totals.positive},
            }
        )

    @extend_schema(parameters=[PreviewQuerySerializer], responses=PreviewSerializer)
    @action(detail=True, methods=["get"], pagination_class=None)
    def preview(self, request: Request, id: str) -> Response:
        """One variant rendered for one lead (default: the first lead of the lists, or sample
        values), with the merge fields it cannot fill."""
        campaign = self.get_object()
        query = PreviewQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        step = self._step(campaign, str(query.validated_data["step"]))
        variant = self._variant(step, query.validated_data["variant"])
        lead = None
        if query.validated_data.get("lead"):
            lead = Lead.objects.filter(
                workspace_id=campaign.workspace_id, public_id=query.validated_data["lead"]
            ).first()
            if lead is None:
                raise NotFound("No such lead.")
        preview = campaign_preview(campaign=campaign, step=step, variant=variant, lead=lead)
        return Response(
            {
                "subject": preview.subject,
                "body": preview.body,
                "missing_fields": preview.missing_fields,
                "problems": preview.problems,
                "lead_email": preview.lead_email,
                "sender": preview.sender,
            }
        )


def routes_register(router: SimpleRouter) -> None:
    """Add this area's viewsets to the API router."""
    router.register("campaigns", CampaignViewSet, basename="campaign")
