"""Pages: the campaign list, the builder (sequence, settings, mailboxes, lists, pre-launch checks,
launch / pause / resume) and the campaign's numbers.

Everyone in the workspace sees campaigns; owners and admins change them (as with domains and
mailboxes). A refusal that names fields is shown beside them on the re-rendered builder; any other
refusal becomes a message on the page (config.middleware.ApplicationErrorMiddleware)."""

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import workspace_view
from accounts.http import WorkspaceRequest
from accounts.models import Role
from campaigns.forms.campaigns import (
    CampaignCreateForm,
    CampaignSettingsForm,
    LaunchForm,
    NewStepForm,
    ResumeForm,
    StepDelayForm,
    VariantForm,
)
from campaigns.models import (
    Campaign,
    CampaignStatus,
    CampaignStep,
    Lead,
    LeadList,
    StepVariant,
)
from campaigns.selectors import campaigns as selectors
from campaigns.services import campaigns as services
from campaigns.services.checks import Check, CheckReport, campaign_checks
from campaigns.services.preview import campaign_preview
from campaigns.templating import UNSUBSCRIBE_FIELD
from config.errors import ApplicationError
from config.forms import form_add_refusal
from sending import selectors as sending_selectors
from sending.models import Mailbox
from sending.services.outbound import EXTERNAL_TIERS
from tracking.selectors import tracking_stats
from tracking.services.switches import campaign_tracking_set

# Merge fields every lead has (custom fields from imports come on top).
MERGE_FIELDS = [
    ("first_name", "First name"),
    ("last_name", "Last name"),
    ("full_name", "First and last name"),
    ("email", "The lead's address"),
    ("company", "Company"),
    ("title", "Job title"),
    ("phone", "Phone"),
    ("website", "Website"),
    ("sender_name", "The sending mailbox's display name"),
    ("sender_first_name", "Its first word"),
    ("sender_email", "The sending address"),
    (UNSUBSCRIBE_FIELD, "The one-click unsubscribe link (required in every message)"),
]
PREVIEW_LEADS = 50
EDITABLE = {CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.PAUSED}


def _can_manage(request: WorkspaceRequest) -> bool:
    return request.membership.has_role(Role.ADMIN)


def _campaign_or_404(request: WorkspaceRequest, campaign_id: str) -> Campaign:
    try:
        return selectors.campaign_get(workspace=request.workspace, public_id=campaign_id)
    except Campaign.DoesNotExist as missing:
        raise Http404("No such campaign.") from missing


def _step_or_404(campaign: Campaign, step_id: int) -> CampaignStep:
    step = CampaignStep.objects.filter(campaign=campaign, pk=step_id).first()
    if step is None:
        raise Http404("No such step.")
    return step


def _variant_or_404(campaign: Campaign, variant_id: int) -> StepVariant:
    variant = (
        StepVariant.objects.filter(step__campaign=campaign, pk=variant_id)
        .select_related("step")
        .first()
    )
    if variant is None:
        raise Http404("No such variant.")
    return variant


def _builder_url(request: WorkspaceRequest, campaign: Campaign, anchor: str = "") -> str:
    url = reverse("campaign_detail", args=[request.workspace.public_id, campaign.public_id])
    return f"{url}#{anchor}" if anchor else url


# --- The list ---------------------------------------------------------------------------------


@workspace_view()
def campaigns(request: WorkspaceRequest) -> HttpResponse:
    """The workspace's campaigns; a POST creates one and opens its builder."""
    form = CampaignCreateForm(request.POST or None)
    if request.method == "POST":
        if not _can_manage(request):
            raise PermissionDenied
        if form.is_valid():
            try:
                campaign = services.campaign_create(
                    workspace=request.workspace, actor=request.user, name=form.cleaned_data["name"]
                )
            except ApplicationError as error:
                form_add_refusal(form, error)
            else:
                messages.success(
                    request,
                    f"{campaign.name} created. Write its steps, choose mailboxes and lead lists, "
                    "then launch it.",
                )
                return redirect(_builder_url(request, campaign))
    return render(
        request,
        "campaigns/campaign_list.html",
        {
            "form": form,
            "campaigns": list(selectors.campaign_list(workspace=request.workspace)),
            "can_manage": _can_manage(request),
        },
    )


# --- The builder ------------------------------------------------------------------------------


@dataclass
class VariantBlock:
    variant: StepVariant
    form: VariantForm


@dataclass
class StepBlock:
    step: CampaignStep
    delay_form: StepDelayForm
    variants: list[VariantBlock] = field(default_factory=list)

    @property
    def can_add_variant(self) -> bool:
        return len(self.variants) < 5

    @property
    def next_label(self) -> str:
        used = {block.variant.label for block in self.variants}
        return next((label for label in "ABCDE" if label not in used), "")


@dataclass
class MailboxChoice:
    mailbox: Mailbox
    selected: bool
    external: bool


@dataclass
class ListChoice:
    lead_list: LeadList
    selected: bool


@dataclass
class Overrides:
    """Forms that come back from a refused POST, with their errors, in place of fresh ones."""

    settings_form: CampaignSettingsForm | None = None
    variant_forms: dict[int, VariantForm] = field(default_factory=dict)
    delay_forms: dict[int, StepDelayForm] = field(default_factory=dict)
    new_step_form: NewStepForm | None = None
    launch_form: LaunchForm | None = None
    resume_form: ResumeForm | None = None


def _settings_form(
    campaign: Campaign,
    mailboxes: list[Mailbox],
    lists: list[LeadList],
    data: Any = None,
) -> CampaignSettingsForm:
    return CampaignSettingsForm(
        data,
        initial=CampaignSettingsForm.initial_for(campaign),
        mailbox_ids=[m.pk for m in mailboxes],
        lead_list_ids=[lst.pk for lst in lists],
    )


def _workspace_lists(request: WorkspaceRequest) -> list[LeadList]:
    return list(
        LeadList.objects.filter(workspace=request.workspace)
        .annotate(lead_count=Count("memberships"))
        .order_by("name", "id")
    )


def _preview_leads(campaign: Campaign) -> list[Lead]:
    return list(
        Lead.objects.filter(
            workspace_id=campaign.workspace_id, memberships__lead_list__campaigns=campaign
        )
        .distinct()
        .order_by("email")[:PREVIEW_LEADS]
    )


def _builder_context(
    request: WorkspaceRequest, campaign: Campaign, overrides: Overrides | None = None
) -> dict[str, Any]:
    over = overrides or Overrides()
    steps: list[StepBlock] = []
    first_variant: StepVariant | None = None
    for step in selectors.campaign_steps(campaign=campaign):
        block = StepBlock(
            step=step,
            delay_form=over.delay_forms.get(step.pk)
            or StepDelayForm(initial={"delay_days": step.delay_days}, prefix=f"s{step.pk}"),
        )
        for variant in step.variants.all():
            first_variant = first_variant or variant
            form = over.variant_forms.get(variant.pk) or VariantForm(
                initial=VariantForm.initial_for(variant), prefix=f"v{variant.pk}"
            )
            block.variants.append(VariantBlock(variant=variant, form=form))
        steps.append(block)

    mailboxes = list(sending_selectors.mailbox_list(workspace=request.workspace))
    lists = _workspace_lists(request)
    settings_form = over.settings_form or _settings_form(campaign, mailboxes, lists)
    chosen_mailboxes = {int(pk) for pk in settings_form["mailbox_ids"].value() or []}
    chosen_lists = {int(pk) for pk in settings_form["lead_list_ids"].value() or []}
    mailbox_choices = [
        MailboxChoice(
            mailbox=m, selected=m.pk in chosen_mailboxes, external=m.domain.tier in EXTERNAL_TIERS
        )
        for m in mailboxes
    ]
    # Domains that cannot send campaigns yet, once each, explained on top of the page when the
    # campaign uses one of their mailboxes or no mailbox of the workspace may send at all (each
    # such mailbox also says it where it is listed).
    no_sender = not any(c.external for c in mailbox_choices)
    held_domains = list(
        {
            c.mailbox.domain.pk: c.mailbox.domain
            for c in mailbox_choices
            if not c.external and (c.selected or no_sender)
        }.values()
    )
    leads = _preview_leads(campaign)
    preview = (
        campaign_preview(
            campaign=campaign,
            step=first_variant.step,
            variant=first_variant,
            lead=leads[0] if leads else None,
        )
        if first_variant is not None
        else None
    )
    report = campaign_checks(campaign=campaign)
    blocking, warnings = _check_rows(request, report)
    return {
        "campaign": campaign,
        "can_manage": _can_manage(request),
        "editable": campaign.status in EDITABLE or campaign.status == CampaignStatus.RUNNING,
        "steps": steps,
        "new_step_form": over.new_step_form or NewStepForm(initial={"delay_days": 3}, prefix="new"),
        "settings_form": settings_form,
        "mailbox_choices": mailbox_choices,
        "held_domains": held_domains,
        "list_choices": [
            ListChoice(lead_list=lst, selected=lst.pk in chosen_lists) for lst in lists
        ],
        "merge_fields": MERGE_FIELDS,
        "custom_fields": _custom_fields(leads),
        "preview": preview,
        "preview_variant": first_variant,
        "preview_lead": leads[0] if leads else None,
        "preview_leads": leads,
        "variant_options": [(b.step, v.variant) for b in steps for v in b.variants],
        "checks": report,
        "check_blocking": blocking,
        "check_warnings": warnings,
        "launch_form": over.launch_form or LaunchForm(),
        "resume_form": over.resume_form or ResumeForm(),
    }


@dataclass
class CheckRow:
    check: Check
    url: str
    label: str


def _check_rows(request: WorkspaceRequest, report: CheckReport) -> tuple[list[CheckRow], ...]:
    """Each check with a link to where it is fixed (a part of this page, or another page)."""
    ws = request.workspace.public_id
    where = {
        "steps": ("#sequence", "Edit the sequence"),
        "mailboxes": ("#mailboxes", "Choose mailboxes"),
        "window": ("#window", "Sending window"),
        "leads": ("#lists", "Choose lead lists"),
        "billing": (reverse("billing", args=[ws]), "Billing and credits"),
    }

    def rows(checks: list[Check]) -> list[CheckRow]:
        return [CheckRow(c, *where.get(c.link_hint, ("", ""))) for c in checks]

    return rows(report.blocking), rows(report.warnings)


def _custom_fields(leads: list[Lead]) -> list[str]:
    names: set[str] = set()
    for lead in leads:
        names.update(str(name) for name in (lead.custom_fields or {}))
    return sorted(names)


def _builder(
    request: WorkspaceRequest, campaign: Campaign, overrides: Overrides | None = None
) -> HttpResponse:
    context = _builder_context(request, campaign, overrides)
    return render(request, "campaigns/campaign_builder.html", context)


@workspace_view()
@require_GET
def campaign_detail(request: WorkspaceRequest, campaign_id: str) -> HttpResponse:
    """The builder: sequence, preview, settings, mailboxes, lists, checks and launch."""
    return _builder(request, _campaign_or_404(request, campaign_id))


@workspace_view(min_role=Role.ADMIN)
@require_POST
def campaign_settings(request: WorkspaceRequest, campaign_id: str) -> HttpResponse:
    campaign = _campaign_or_404(request, campaign_id)
    mailboxes = list(sending_selectors.mailbox_list(workspace=request.workspace))
    lists = _workspace_lists(request)
    form = _settings_form(campaign, mailboxes, lists, data=request.POST)
    if form.is_valid():
        try:
            with transaction.atomic():
                services.campaign_settings_update(
                    campaign=campaign, actor=request.user, data=form.settings_data()
                )
                campaign_tracking_set(campaign=campaign, actor=request.user, **form.tracking_data())
        except ApplicationError as error:
            form_add_refusal(form, error)
        else:
            messages.success(request, "Settings saved.")
            return redirect(_builder_url(request, campaign, "settings"))
    campaign.refresh_from_db()
    return _builder(request, campaign, Overrides(settings_form=form))


@workspace_view(min_role=Role.ADMIN)
@require_POST
def campaign_step_add(request: WorkspaceRequest, campaign_id: str) -> HttpResponse:
    campaign = _campaign_or_404(request, campaign_id)
    form = NewStepForm(request.POST, prefix="new")
    if form.is_valid():
        try:
            step = services.campaign_step_add(
                campaign=campaign, actor=request.user, delay_days=form.cleaned_data["delay_days"]
            )
        except ApplicationError as error:
            form_add_refusal(form, error)
        else:
            messages.success(request, f"Step {step.position} added: write its message below.")
            return redirect(_builder_url(request, campaign, f"step-{step.pk}"))
    return _builder(request, campaign, Overrides(new_step_form=form))


@workspace_view(min_role=Role.ADMIN)
@require_POST
def campaign_step(request: WorkspaceRequest, campaign_id: str, step_id: int) -> HttpResponse:
    """Save a step's delay, or remove the step (action=remove)."""
    campaign = _campaign_or_404(request, campaign_id)
    step = _step_or_404(campaign, step_id)
    if request.POST.get("action") == "remove":
        position = step.position
        services.campaign_step_remove(step=step, actor=request.user)
        messages.success(request, f"Step {position} removed; the steps after it moved up.")
        return redirect(_builder_url(request, campaign, "sequence"))
    form = StepDelayForm(request.POST, prefix=f"s{step.pk}")
    if form.is_valid():
        try:
            services.campaign_step_update(
                step=step, actor=request.user, delay_days=form.cleaned_data["delay_days"]
            )
        except ApplicationError as error:
            form_add_refusal(form, error)
        else:
            messages.success(request, f"Step {step.position} saved.")
            return redirect(_builder_url(request, campaign, f"step-{step.pk}"))
    return _builder(request, campaign, Overrides(delay_forms={step.pk: form}))


@workspace_view(min_role=Role.ADMIN)
@require_POST
def campaign_variant_add(request: WorkspaceRequest, campaign_id: str, step_id: int) -> HttpResponse:
    """A new A/B variant, starting as a copy of the step's first one."""
    campaign = _campaign_or_404(request, campaign_id)
    step = _step_or_404(campaign, step_id)
    model = step.variants.order_by("label").first()
    variant = services.step_variant_save(
        step=step,
        actor=request.user,
        variant=None,
        subject=model.subject if model else "",
        body=model.body if model else "",
    )
    messages.success(
        request,
        f"Variant {variant.label} added to step {step.position} as a copy of "
        f"{model.label if model else 'the step'}: change it, then save.",
    )
    return redirect(_builder_url(request, campaign, f"variant-{variant.pk}"))


@workspace_view(min_role=Role.ADMIN)
@require_POST
def campaign_variant(request: WorkspaceRequest, campaign_id: str, variant_id: int) -> HttpResponse:
    """Save a variant's subject and body, or remove it (action=remove)."""
    campaign = _campaign_or_404(request, campaign_id)
    variant = _variant_or_404(campaign, variant_id)
    if request.POST.get("action") == "remove":
        services.step_variant_remove(variant=variant, actor=request.user)
        messages.success(
            request, f"Variant {variant.label} of step {variant.step.position} removed."
        )
        return redirect(_builder_url(request, campaign, f"step-{variant.step_id}"))
    form = VariantForm(request.POST, prefix=f"v{variant.pk}")
    if form.is_valid():
        try:
            services.step_variant_save(
                step=variant.step,
                actor=request.user,
                variant=variant,
                subject=form.cleaned_data["subject"],
                body=form.cleaned_data["body"],
                active=form.cleaned_data["active"],
            )
        except ApplicationError as error:
            form_add_refusal(form, error)
        else:
            messages.success(
                request, f"Step {variant.step.position}, variant {variant.label} saved."
            )
            return redirect(_builder_url(request, campaign, f"variant-{variant.pk}"))
    return _builder(request, campaign, Overrides(variant_forms={variant.pk: form}))


@workspace_view()
@require_GET
def campaign_preview_pane(request: WorkspaceRequest, campaign_id: str) -> HttpResponse:
    """The preview of one variant for one lead (HTMX swaps it in beside the sequence)."""
    campaign = _campaign_or_404(request, campaign_id)
    variant_id = request.GET.get("variant", "")
    if not variant_id.isdigit():
        raise Http404("No such variant.")
    variant = _variant_or_404(campaign, int(variant_id))
    lead_id = request.GET.get("lead", "")
    lead = None
    if lead_id:
        lead = Lead.objects.filter(workspace=request.workspace, public_id=lead_id).first()
        if lead is None:
            raise Http404("No such lead.")
    preview = campaign_preview(campaign=campaign, step=variant.step, variant=variant, lead=lead)
    options = StepVariant.objects.filter(step__campaign=campaign).select_related("step")
    return render(
        request,
        "campaigns/partials/campaign_preview.html",
        {
            "campaign": campaign,
            "preview": preview,
            "preview_variant": variant,
            "preview_lead": lead,
            "preview_leads": _preview_leads(campaign),
            "variant_options": [(v.step, v) for v in options.order_by("step__position", "label")],
        },
    )


# --- Launch, pause, resume, delete ------------------------------------------------------------

CHECK_CODES = {"campaign_checks_failed", "campaign_checks_warn"}


@workspace_view(min_role=Role.ADMIN)
@require_POST
def campaign_launch(request: WorkspaceRequest, campaign_id: str) -> HttpResponse:
    campaign = _campaign_or_404(request, campaign_id)
    form = LaunchForm(request.POST)
    form.is_valid()
    try:
        campaign = services.campaign_launch(
            campaign=campaign,
            actor=request.user,
            acknowledge_warnings=bool(form.cleaned_data.get("acknowledge_warnings")),
        )
    except ApplicationError as error:
        if error.code not in CHECK_CODES:
            raise
        where = "acknowledge_warnings" if error.code == "campaign_checks_warn" else None
        form.add_error(where, error.message)
        campaign.refresh_from_db()
        return _builder(request, campaign, Overrides(launch_form=form))
    if campaign.status == CampaignStatus.SCHEDULED and campaign.start_at:
        messages.success(request, f"{campaign.name} is scheduled: it starts on its start date.")
    else:
        messages.success(
            request,
            f"{campaign.name} launched: messages go out within the sending window, within the "
            "daily limits.",
        )
    return redirect(_builder_url(request, campaign))


@workspace_view(min_role=Role.ADMIN)
@require_POST
def campaign_pause(request: WorkspaceRequest, campaign_id: str) -> HttpResponse:
    campaign = services.campaign_pause(
        campaign=_campaign_or_404(request, campaign_id), actor=request.user
    )
    messages.success(request, f"{campaign.name} paused: nothing more goes out until you resume.")
    return redirect(_builder_url(request, campaign))


@workspace_view(min_role=Role.ADMIN)
@require_POST
def campaign_resume(request: WorkspaceRequest, campaign_id: str) -> HttpResponse:
    campaign = _campaign_or_404(request, campaign_id)
    form = ResumeForm(request.POST)
    form.is_valid()
    try:
        campaign = services.campaign_resume(
            campaign=campaign,
            actor=request.user,
            acknowledge=bool(form.cleaned_data.get("acknowledge")),
        )
    except ApplicationError as error:
        if error.code != "campaign_resume_needs_ack":
            raise
        # The card above already says why it was paused; the box asks for the confirmation.
        form.add_error(
            "acknowledge",
            "Tick this box to confirm you have dealt with the cause, then resume.",
        )
        return _builder(request, campaign, Overrides(resume_form=form))
    messages.success(request, f"{campaign.name} resumed.")
    return redirect(_builder_url(request, campaign))


@workspace_view(min_role=Role.ADMIN)
@require_POST
def campaign_delete(request: WorkspaceRequest, campaign_id: str) -> HttpResponse:
    campaign = _campaign_or_404(request, campaign_id)
    name = campaign.name
    services.campaign_delete(campaign=campaign, actor=request.user)
    messages.success(request, f"{name} deleted.")
    return redirect("campaigns", request.workspace.public_id)


# --- Numbers ----------------------------------------------------------------------------------

CHART_WIDTH = 600
CHART_HEIGHT = 160


@dataclass
class Bar:
    day: date
    sent: int
    replied: int
    x: float
    y: float
    width: float
    height: float
    reply_y: float  # the replies' bar, on the same scale, drawn inside the sent one
    reply_height: float


@dataclass
class DailyChart:
    bars: list[Bar]
    peak: int
    total: int
    replies: int
    first: date | None
    last: date | None
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT


def daily_chart(series: list[selectors.DailyPoint]) -> DailyChart:
    """Bars of messages sent and human replies received per day, scaled to the busiest day, in
    the SVG's own units."""
    peak = max((max(point.sent, point.replied) for point in series), default=0)
    slot = CHART_WIDTH / max(len(series), 1)

    def height(count: int) -> float:
        return 0.0 if peak == 0 else round(CHART_HEIGHT * count / peak, 2)

    bars = [
        Bar(
            day=point.day,
            sent=point.sent,
            replied=point.replied,
            x=round(i * slot + slot * 0.15, 2),
            y=round(CHART_HEIGHT - height(point.sent), 2),
            width=round(slot * 0.7, 2),
            height=height(point.sent),
            reply_y=round(CHART_HEIGHT - height(point.replied), 2),
            reply_height=height(point.replied),
        )
        for i, point in enumerate(series)
    ]
    return DailyChart(
        bars=bars,
        peak=max((point.sent for point in series), default=0),
        total=sum(point.sent for point in series),
        replies=sum(point.replied for point in series),
        first=series[0].day if series else None,
        last=series[-1].day if series else None,
    )


@workspace_view()
@require_GET
def campaign_stats(request: WorkspaceRequest, campaign_id: str) -> HttpResponse:
    """The campaign's numbers: totals, per step and variant, and a daily chart."""
    campaign = _campaign_or_404(request, campaign_id)
    stats = selectors.campaign_stats(campaign=campaign)
    return render(
        request,
        "campaigns/campaign_stats.html",
        {
            "campaign": campaign,
            "stats": stats,
            "chart": daily_chart(stats.daily),
            "tracking": tracking_stats(campaign=campaign).totals,
        },
    )


pages: list[URLPattern] = [
    path("campaigns/", campaigns, name="campaigns"),
    path("campaigns/<str:campaign_id>/", campaign_detail, name="campaign_detail"),
    path("campaigns/<str:campaign_id>/settings/", campaign_settings, name="campaign_settings"),
    path("campaigns/<str:campaign_id>/steps/", campaign_step_add, name="campaign_step_add"),
    path("campaigns/<str:campaign_id>/steps/<int:step_id>/", campaign_step, name="campaign_step"),
    path(
        "campaigns/<str:campaign_id>/steps/<int:step_id>/variants/",
        campaign_variant_add,
        name="campaign_variant_add",
    ),
    path(
        "campaigns/<str:campaign_id>/variants/<int:variant_id>/",
        campaign_variant,
        name="campaign_variant",
    ),
    path("campaigns/<str:campaign_id>/preview/", campaign_preview_pane, name="campaign_preview"),
    path("campaigns/<str:campaign_id>/launch/", campaign_launch, name="campaign_launch"),
    path("campaigns/<str:campaign_id>/pause/", campaign_pause, name="campaign_pause"),
    path("campaigns/<str:campaign_id>/resume/", campaign_resume, name="campaign_resume"),
    path("campaigns/<str:campaign_id>/delete/", campaign_delete, name="campaign_delete"),
    path("campaigns/<str:campaign_id>/stats/", campaign_stats, name="campaign_stats"),
]
