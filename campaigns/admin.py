"""The operations console for campaigns and leads. Everything here is read-only: customers build
campaigns and import leads through their pages and the API; staff pause and resume campaigns
through actions that call the services (audit-logged with the staff member and a reason)."""

from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from accounts.models import User
from campaigns.models import (
    Campaign,
    CampaignLead,
    CampaignSend,
    CampaignStatus,
    CampaignStep,
    Lead,
    LeadImport,
    LeadList,
    StepVariant,
)
from campaigns.services.campaigns import campaign_pause, campaign_resume
from config.admin_actions import ReasonedAction, ServiceOwnedAdmin

CUSTOMER_SEES = (
    "The reason is recorded in the audit log with your name; a pause reason is shown to the "
    "customer on the campaign list."
)


def _pause(campaign: Campaign, staff: User, reason: str) -> Campaign:
    return campaign_pause(campaign=campaign, actor=staff, reason=reason)


def _resume(campaign: Campaign, staff: User, reason: str) -> Campaign:
    # A bounce-protection pause stays the customer's to acknowledge: the service refuses it.
    return campaign_resume(campaign=campaign, actor=staff, reason=reason)


CAMPAIGN_ACTIONS = [
    ReasonedAction(
        name="pause",
        description="Pause",
        done="campaign(s) paused",
        call=_pause,
        rows=lambda qs: qs.filter(status__in=[CampaignStatus.RUNNING, CampaignStatus.SCHEDULED]),
        nothing="None of the selected campaigns is running or scheduled.",
        note=CUSTOMER_SEES,
    ),
    ReasonedAction(
        name="resume",
        description="Resume",
        done="campaign(s) resumed",
        call=_resume,
        rows=lambda qs: qs.filter(status=CampaignStatus.PAUSED),
        nothing="None of the selected campaigns is paused.",
        note=CUSTOMER_SEES,
    ),
]


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class StepInline(_ReadOnlyInline):
    model = CampaignStep
    fields = ["position", "delay_days", "variant_list"]
    readonly_fields = ["position", "delay_days", "variant_list"]
    ordering = ["position"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[CampaignStep]:
        return super().get_queryset(request).prefetch_related("variants")

    @admin.display(description="Variants")
    def variant_list(self, step: CampaignStep) -> str:
        return format_html_join(
            ", ",
            "{} {}: {}",
            (
                (v.label, "" if v.active else "(off)", v.subject or "(reply in thread)")
                for v in step.variants.all()
            ),
        )


class VariantInline(_ReadOnlyInline):
    model = StepVariant
    fields = ["label", "active", "subject", "body"]
    readonly_fields = ["label", "active", "subject", "body"]
    show_change_link = False


@admin.register(Campaign)
class CampaignAdmin(ServiceOwnedAdmin):
    # Few, narrow columns: the list must fit beside the navigation and the filters.
    list_display = ["name", "status_label", "workspace_name", "launched_at"]
    list_filter = ["status", "paused_by_system"]
    search_fields = ["name", "public_id", "workspace__public_id", "workspace__name"]
    list_select_related = ["workspace"]
    fieldsets = [
        (None, {"fields": ["public_id", "workspace", "name", "created_by", "created_at"]}),
        (
            "Status",
            {
                "fields": [
                    "status",
                    "status_reason",
                    "paused_by_system",
                    "start_at",
                    "launched_at",
                    "finished_at",
                ]
            },
        ),
        (
            "Sending",
            {
                "fields": [
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
                ]
            },
        ),
        ("History", {"fields": ["audit_trail"]}),
    ]
    readonly_fields = ["public_id", "audit_trail"]
    inlines = [StepInline]
    actions = CAMPAIGN_ACTIONS
    show_full_result_count = False

    @admin.display(description="Status", ordering="status")
    def status_label(self, campaign: Campaign) -> str:
        by = " by bounce protection" if campaign.paused_by_system else ""
        if not campaign.status_reason:
            return f"{campaign.get_status_display()}{by}"
        return format_html(
            "{}{}<br><small>{}</small>",
            campaign.get_status_display(),
            by,
            campaign.status_reason,
        )

    @admin.display(description="Workspace", ordering="workspace__name")
    def workspace_name(self, campaign: Campaign) -> str:
        return campaign.workspace.name

    @admin.display(description="Audit trail")
    def audit_trail(self, campaign: Campaign) -> str:
        url = reverse("admin:accounts_auditlog_changelist")
        return format_html(
            '<a href="{}?object_type={}&object_id={}">Audit log entries</a>',
            url,
            campaign._meta.label,
            campaign.pk,
        )


@admin.register(CampaignStep)
class CampaignStepAdmin(ServiceOwnedAdmin):
    list_display = ["__str__", "campaign", "position", "delay_days"]
    list_select_related = ["campaign"]
    search_fields = ["campaign__name", "campaign__public_id"]
    fields = ["campaign", "position", "delay_days"]
    inlines = [VariantInline]
    show_full_result_count = False


@admin.register(Lead)
class LeadAdmin(ServiceOwnedAdmin):
    list_display = ["email", "workspace", "status", "role_address", "company", "created_at"]
    list_filter = ["status", "role_address", "time_zone_guessed"]
    search_fields = ["email", "public_id", "workspace__public_id"]
    list_select_related = ["workspace"]
    readonly_fields = ["public_id"]
    show_full_result_count = False


@admin.register(LeadList)
class LeadListAdmin(ServiceOwnedAdmin):
    list_display = ["name", "workspace", "lead_count", "created_at"]
    search_fields = ["name", "public_id", "workspace__public_id"]
    list_select_related = ["workspace"]
    readonly_fields = ["public_id"]
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[LeadList]:
        return super().get_queryset(request).annotate(lead_total=Count("memberships"))

    @admin.display(description="Leads", ordering="lead_total")
    def lead_count(self, lead_list: Any) -> int:
        return int(getattr(lead_list, "lead_total", 0))


@admin.register(LeadImport)
class LeadImportAdmin(ServiceOwnedAdmin):
    list_display = [
        "file_name",
        "workspace",
        "kind",
        "state",
        "progress_percent",
        "created_at",
        "finished_at",
    ]
    list_filter = ["state", "kind"]
    search_fields = ["file_name", "public_id", "workspace__public_id"]
    list_select_related = ["workspace"]
    readonly_fields = ["public_id"]
    exclude = ["file"]
    show_full_result_count = False


@admin.register(CampaignLead)
class CampaignLeadAdmin(ServiceOwnedAdmin):
    list_display = ["lead", "campaign", "state", "next_step", "next_at", "mailbox", "waiting_for"]
    list_filter = ["state"]
    search_fields = ["lead__email", "campaign__public_id", "campaign__name"]
    list_select_related = ["lead", "campaign", "mailbox__domain"]
    raw_id_fields = ["lead", "campaign", "mailbox"]
    show_full_result_count = False


@admin.register(CampaignSend)
class CampaignSendAdmin(ServiceOwnedAdmin):
    list_display = [
        "id",
        "campaign",
        "recipient",
        "step_position",
        "variant_label",
        "message_state",
    ]
    search_fields = ["campaign__public_id", "campaign_lead__lead__email"]
    list_select_related = [
        "campaign",
        "campaign_lead__lead",
        "step",
        "variant",
        "message",
    ]
    raw_id_fields = ["campaign", "campaign_lead", "step", "variant", "mailbox", "message"]
    show_full_result_count = False

    @admin.display(description="Recipient")
    def recipient(self, send: CampaignSend) -> str:
        return send.campaign_lead.lead.email

    @admin.display(description="Step")
    def step_position(self, send: CampaignSend) -> int:
        return send.step.position

    @admin.display(description="Variant")
    def variant_label(self, send: CampaignSend) -> str:
        return send.variant.label if send.variant else "-"

    @admin.display(description="Message")
    def message_state(self, send: CampaignSend) -> str:
        return send.message.get_state_display() if send.message else "-"
