"""API: leads, lead lists and a campaign's leads (bulk add).

- `/leads/`: list (filters `list`, `status`, `search`), create one (merged into an existing lead
  with the same address), retrieve, patch, delete.
- `/lead-lists/`: list, create, retrieve, rename, delete (a deleted list's leads stay).
- `/campaigns/{campaign_id}/leads/`: GET the campaign's leads with their state; POST
  `{"leads": [...], "list": "<list id>"?, "skip_role_addresses": false}` with up to 1,000 leads:
  each is added or merged like a CSV row, then enrolled in the campaign. The answer carries the
  counts and, per lead that was not taken, its index in `leads` and the reason. A payload that
  is not of that shape is refused whole (400, nothing written).
"""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from accounts.api.views import api_membership_for_write, api_memberships
from accounts.http import api_user
from campaigns.models import Campaign, CampaignLead, CampaignLeadState, Lead, LeadList, LeadStatus
from campaigns.selectors import leads as selectors
from campaigns.services.leads import (
    LEAD_FIELDS,
    LeadRow,
    Outcome,
    campaign_leads_add,
    lead_delete,
    lead_list_create,
    lead_list_delete,
    lead_list_rename,
    lead_update,
    leads_upsert,
)
from config.errors import ApplicationError

BULK_MAX = 1000
CUSTOM_FIELDS_HELP = (
    "Extra merge fields, name -> text (names: lower-case letters, digits, underscores)."
)

# --- Serializers -------------------------------------------------------------------------------


class LeadListSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    lead_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = LeadList
        fields = ["id", "name", "lead_count", "created_at"]
        read_only_fields = ["created_at"]


class LeadListWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    workspace = serializers.CharField(
        required=False, help_text="The workspace's id (only for a session in several)."
    )


class LeadSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    lists = serializers.SerializerMethodField()
    custom_fields = serializers.DictField(child=serializers.CharField(allow_blank=True))

    class Meta:
        model = Lead
        fields = [
            "id",
            "email",
            *LEAD_FIELDS,
            "time_zone_guessed",
            "custom_fields",
            "role_address",
            "status",
            "status_changed_at",
            "out_of_office_until",
            "lists",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_lists(self, lead: Lead) -> list[str]:
        return [item.public_id for item in lead.lists.all()]


class LeadInSerializer(serializers.Serializer):
    """A lead to add: only the address is required."""

    email = serializers.CharField(max_length=320)
    first_name = serializers.CharField(max_length=120, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=120, required=False, allow_blank=True)
    company = serializers.CharField(max_length=200, required=False, allow_blank=True)
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=60, required=False, allow_blank=True)
    website = serializers.CharField(max_length=300, required=False, allow_blank=True)
    time_zone = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        help_text="IANA zone (Europe/Berlin). Left out: guessed from a country-code domain.",
    )
    custom_fields = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=1000),
        required=False,
        help_text=CUSTOM_FIELDS_HELP,
    )


class LeadCreateSerializer(LeadInSerializer):
    list = serializers.CharField(required=False, help_text="Add the lead to this list (its id).")
    workspace = serializers.CharField(
        required=False, help_text="The workspace's id (only for a session in several)."
    )


class LeadUpdateSerializer(serializers.Serializer):
    first_name = serializers.CharField(max_length=120, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=120, required=False, allow_blank=True)
    company = serializers.CharField(max_length=200, required=False, allow_blank=True)
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=60, required=False, allow_blank=True)
    website = serializers.CharField(max_length=300, required=False, allow_blank=True)
    time_zone = serializers.CharField(max_length=64, required=False, allow_blank=True)
    custom_fields = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=1000),
        required=False,
        help_text=CUSTOM_FIELDS_HELP + " Replaces the lead's custom fields.",
    )
    status = serializers.ChoiceField(choices=LeadStatus.choices, required=False)
    out_of_office_until = serializers.DateField(
        required=False, allow_null=True, help_text="Required with the status out_of_office."
    )
    lists = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="The ids of the lists the lead is on (replaces its lists).",
    )


class BulkAddSerializer(serializers.Serializer):
    leads = LeadInSerializer(many=True, allow_empty=False, help_text=f"1 to {BULK_MAX} leads.")
    list = serializers.CharField(
        required=False, help_text="Also add the leads to this list of the campaign's workspace."
    )
    skip_role_addresses = serializers.BooleanField(
        default=False, help_text="Skip info@, sales@ ...; by default they are added, flagged."
    )

    def validate_leads(self, value: Any) -> Any:
        if len(value) > BULK_MAX:
            raise ValidationError(f"At most {BULK_MAX} leads a request; send the rest in another.")
        return value


class BulkCountsSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    added = serializers.IntegerField(help_text="New leads.")
    merged = serializers.IntegerField(help_text="Merged into an existing lead or an earlier item.")
    invalid = serializers.IntegerField(help_text="Not a valid address.")
    role = serializers.IntegerField(help_text="Role addresses (flagged, or skipped if asked).")
    suppressed = serializers.IntegerField(help_text="On a suppression list or a blocked domain.")
    failed = serializers.IntegerField(help_text="A field too long or a bad custom field name.")
    enrolled = serializers.IntegerField(help_text="Leads newly enrolled in the campaign.")


class BulkErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position in `leads`, from 0.")
    email = serializers.CharField()
    code = serializers.CharField(help_text="invalid, role_skipped, suppressed or failed.")
    message = serializers.CharField()


class BulkResultSerializer(serializers.Serializer):
    counts = BulkCountsSerializer()

    def get_fields(self) -> dict[str, serializers.Field]:
        # `errors` is also a Serializer attribute, so it is declared here rather than above.
        fields = super().get_fields()
        fields["errors"] = BulkErrorSerializer(many=True)
        return fields


class CampaignLeadSerializer(serializers.ModelSerializer):
    lead = serializers.CharField(source="lead.public_id")
    email = serializers.CharField(source="lead.email")
    state = serializers.ChoiceField(choices=CampaignLeadState.choices)

    class Meta:
        model = CampaignLead
        fields = [
            "lead",
            "email",
            "state",
            "state_reason",
            "next_step",
            "next_at",
            "waiting_for",
            "last_sent_at",
            "created_at",
        ]
        read_only_fields = fields


# --- Helpers -----------------------------------------------------------------------------------


def _workspace_ids(request: Request) -> QuerySet:
    return api_memberships(request).values("workspace_id")


def _lead_row(index: int, data: dict[str, Any]) -> LeadRow:
    return LeadRow(
        ref=index,
        email=data["email"],
        fields={name: data[name] for name in LEAD_FIELDS if name in data},
        custom_fields=dict(data.get("custom_fields") or {}),
    )


def _list_in(workspace_id: int, public_id: str | None, field: str = "list") -> LeadList | None:
    if not public_id:
        return None
    found = LeadList.objects.filter(workspace_id=workspace_id, public_id=public_id).first()
    if found is None:
        raise ValidationError({field: [f"No list {public_id} in this workspace."]})
    return found


def _bulk_errors(errors: Any, path: str = "") -> dict[str, list[str]]:
    """Nested errors as flat paths: `leads[3].email` -> its messages."""
    flat: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
                name = f"{path}[{key}]"
            else:
                name = f"{path}.{key}" if path else str(key)
            flat.update(_bulk_errors(value, name))
    elif isinstance(errors, list) and any(isinstance(item, dict | list) for item in errors):
        for index, item in enumerate(errors):
            if item:
                flat.update(_bulk_errors(item, f"{path}[{index}]"))
    else:
        items = errors if isinstance(errors, list) else [errors]
        flat[path or "non_field_errors"] = [str(item) for item in items]
    return flat


# --- Views -------------------------------------------------------------------------------------


class LeadViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Leads of the workspaces this request may see."""

    serializer_class = LeadSerializer
    queryset = Lead.objects.none()
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Lead]:
        params = self.request.query_params
        return selectors.lead_filter(
            Lead.objects.filter(workspace_id__in=_workspace_ids(self.request)),
            search=params.get("search", ""),
            list_public_id=params.get("list", ""),
            status=params.get("status", ""),
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("search", str, description="Part of the address, name or company."),
            OpenApiParameter("list", str, description="Only the leads of this list (its id)."),
            OpenApiParameter("status", str, enum=LeadStatus.values),
        ]
    )
    def list(self, request: Request) -> Response:
        return super().list(request)

    @extend_schema(
        request=LeadCreateSerializer,
        responses={201: LeadSerializer, 200: LeadSerializer},
        description="Add a lead (201), or merge into the workspace's lead with that address "
        "(200: empty fields filled in). An invalid, suppressed or blocked address is a 400.",
    )
    def create(self, request: Request) -> Response:
        data = LeadCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = api_membership_for_write(request, data.validated_data.get("workspace"))
        target = _list_in(membership.workspace_id, data.validated_data.get("list"))
        result = leads_upsert(
            workspace=membership.workspace,
            rows=[_lead_row(0, data.validated_data)],
            lead_list=target,
            where="item",
        )
        outcome = result.outcomes[0]
        if outcome.lead_id is None:
            raise ApplicationError(
                outcome.reason, code=outcome.outcome, fields={"email": [outcome.reason]}
            )
        lead = self.get_queryset().get(pk=outcome.lead_id)
        added = outcome.outcome == Outcome.ADDED
        return Response(
            LeadSerializer(lead).data,
            status=status.HTTP_201_CREATED if added else status.HTTP_200_OK,
        )

    @extend_schema(request=LeadUpdateSerializer, responses=LeadSerializer)
    def partial_update(self, request: Request, id: str) -> Response:
        """Change fields, custom fields, status or lists; the address does not change."""
        lead = self.get_object()
        data = LeadUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        if "lists" in changes:
            ids = list(dict.fromkeys(changes["lists"]))
            found = list(LeadList.objects.filter(workspace_id=lead.workspace_id, public_id__in=ids))
            if len(found) != len(ids):
                missing = sorted(set(ids) - {item.public_id for item in found})
                raise ValidationError({"lists": [f"No list {', '.join(missing)} here."]})
            changes["lists"] = found
        lead_update(lead=lead, actor=api_user(request), data=changes)
        return Response(LeadSerializer(self.get_queryset().get(pk=lead.pk)).data)

    def perform_destroy(self, instance: Lead) -> None:
        lead_delete(lead=instance, actor=api_user(self.request))


class LeadListViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Lead lists of the workspaces this request may see; deleting a list keeps its leads."""

    serializer_class = LeadListSerializer
    queryset = LeadList.objects.none()
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[LeadList]:
        lists = LeadList.objects.filter(workspace_id__in=_workspace_ids(self.request))
        return selectors.lead_list_counts(lists).order_by("name", "id")

    @extend_schema(request=LeadListWriteSerializer, responses={201: LeadListSerializer})
    def create(self, request: Request) -> Response:
        data = LeadListWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = api_membership_for_write(request, data.validated_data.get("workspace"))
        created = lead_list_create(
            workspace=membership.workspace,
            actor=api_user(request),
            name=data.validated_data["name"],
        )
        return Response(
            LeadListSerializer(self.get_queryset().get(pk=created.pk)).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=LeadListWriteSerializer, responses=LeadListSerializer)
    def partial_update(self, request: Request, id: str) -> Response:
        """Rename the list."""
        found = self.get_object()
        data = LeadListWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        lead_list_rename(lead_list=found, actor=api_user(request), name=data.validated_data["name"])
        return Response(LeadListSerializer(self.get_queryset().get(pk=found.pk)).data)

    def perform_destroy(self, instance: LeadList) -> None:
        lead_list_delete(lead_list=instance, actor=api_user(self.request))


CAMPAIGN_ID = OpenApiParameter(
    "campaign_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The campaign's id."
)


class CampaignLeadViewSet(viewsets.GenericViewSet):
    """A campaign's leads: their state, and adding leads in bulk."""

    serializer_class = CampaignLeadSerializer
    queryset = CampaignLead.objects.none()

    def _campaign(self) -> Campaign:
        campaign = selectors.campaign_get_for_workspaces(
            workspace_ids=_workspace_ids(self.request), public_id=self.kwargs["campaign_id"]
        )
        if campaign is None:
            raise NotFound("No such campaign.")
        return campaign

    @extend_schema(parameters=[CAMPAIGN_ID], responses=CampaignLeadSerializer(many=True))
    def list(self, request: Request, campaign_id: str) -> Response:
        """The campaign's leads with their state, next step and when it is due."""
        page = self.paginate_queryset(selectors.campaign_lead_list(campaign=self._campaign()))
        return self.get_paginated_response(CampaignLeadSerializer(page, many=True).data)

    @extend_schema(
        parameters=[CAMPAIGN_ID], request=BulkAddSerializer, responses=BulkResultSerializer
    )
    def create(self, request: Request, campaign_id: str) -> Response:
        """Add up to 1,000 leads (merged like a CSV import) and enrol them in the campaign."""
        campaign = self._campaign()
        payload = {"leads": request.data} if isinstance(request.data, list) else request.data
        data = BulkAddSerializer(data=payload)
        if not data.is_valid():
            raise ValidationError(_bulk_errors(data.errors))
        target = _list_in(campaign.workspace_id, data.validated_data.get("list"))
        rows = [_lead_row(i, item) for i, item in enumerate(data.validated_data["leads"])]
        added = campaign_leads_add(
            campaign=campaign,
            actor=api_user(request),
            rows=rows,
            lead_list=target,
            skip_role_addresses=data.validated_data["skip_role_addresses"],
        )
        counts = added.result.counts()
        counts["received"] = counts.pop("rows")
        counts["enrolled"] = added.enrolled
        errors = [
            {"index": o.ref, "email": o.email, "code": o.outcome, "message": o.reason}
            for o in added.result.outcomes
            if o.lead_id is None
        ]
        return Response({"counts": counts, "errors": errors})


def routes_register(router: SimpleRouter) -> None:
    """Add this area's viewsets to the API router."""
    router.register("leads", LeadViewSet, basename="lead")
    router.register("lead-lists", LeadListViewSet, basename="lead-list")
    router.register(
        r"campaigns/(?P<campaign_id>[^/.]+)/leads", CampaignLeadViewSet, basename="campaign-lead"
    )
