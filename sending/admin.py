from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.models import User
from campaigns.services.suppressions import (
    suppressed_domain_block,
    suppressed_domain_clean,
    suppressed_domain_unblock,
    suppression_add,
    suppression_address_clean,
    suppression_remove,
)
from config.admin_actions import ConsoleAdmin, Outcome, ReasonedAction, ServiceOwnedAdmin
from config.errors import ApplicationError
from reputation.scoring import Tier
from sending.models import (
    DkimKey,
    DomainStatus,
    Mailbox,
    MailboxGrant,
    MailboxImport,
    MailboxStatus,
    Message,
    MessageState,
    SendingDomain,
    SuppressedDomain,
    Suppression,
)
from sending.services.domains import DnsOutcome, domain_recheck, domain_release
from sending.services.mailboxes import mailbox_cooldown, mailbox_pause, mailbox_resume
from sending.services.status import domain_cooldown, domain_quarantine

CUSTOMER_SEES = (
    "The reason is recorded in the audit log with your name, and the customer sees it as the "
    "status reason on their domain or mailbox page."
)
PENALISED = [DomainStatus.COOLDOWN, DomainStatus.QUARANTINED]


def _outcome(result: DnsOutcome) -> Outcome:
    verified = result.domain.status == DomainStatus.VERIFIED
    return Outcome(result.summary, messages.SUCCESS if verified else messages.WARNING)


def _mailboxes_of(domains: QuerySet[SendingDomain]) -> QuerySet[Mailbox]:
    return Mailbox.objects.filter(domain__in=domains).select_related("domain__workspace")


def _pause(mailbox: Mailbox, staff: User, reason: str) -> Mailbox:
    return mailbox_pause(mailbox=mailbox, actor=staff, reason=reason)


def _resume(mailbox: Mailbox, staff: User, reason: str) -> Mailbox:
    return mailbox_resume(mailbox=mailbox, actor=staff, reason=reason)


DOMAIN_ACTIONS = [
    ReasonedAction(
        name="reverify",
        description="Re-verify DNS now",
        done="domain(s) re-checked",
        call=lambda d, staff, why: _outcome(domain_recheck(domain=d, actor=staff, reason=why)),
        rows=lambda qs: qs.exclude(status=DomainStatus.RETIRED),
        nothing="Removed domains are not checked.",
        note="The reason is recorded in the audit log with what the check found.",
    ),
    ReasonedAction(
        name="pause_mailboxes",
        description="Pause all its mailboxes",
        done="mailbox(es) paused",
        call=_pause,
        rows=lambda qs: _mailboxes_of(qs).filter(status=MailboxStatus.ACTIVE),
        nothing="The selected domains have no active mailboxes.",
        note=CUSTOMER_SEES,
    ),
    ReasonedAction(
        name="resume_mailboxes",
        description="Resume all its mailboxes",
        done="mailbox(es) resumed",
        call=_resume,
        rows=lambda qs: _mailboxes_of(qs).exclude(status=MailboxStatus.ACTIVE),
        nothing="The selected domains have no paused or cooling-down mailboxes.",
        note=CUSTOMER_SEES,
    ),
    ReasonedAction(
        name="cooldown",
        description="Cool-down for 14 days",
        done="domain(s) in cool-down",
        call=lambda d, staff, why: domain_cooldown(domain=d, actor=staff, reason=why),
        rows=lambda qs: qs.exclude(status=DomainStatus.RETIRED),
        nothing="Removed domains cannot be cooled down.",
        note=CUSTOMER_SEES,
    ),
    ReasonedAction(
        name="quarantine",
        description="Quarantine (stop all sending)",
        done="domain(s) quarantined",
        call=lambda d, staff, why: domain_quarantine(domain=d, actor=staff, reason=why),
        rows=lambda qs: qs.exclude(status__in=[DomainStatus.RETIRED, DomainStatus.QUARANTINED]),
        nothing="The selected domains are already quarantined or removed.",
        note=CUSTOMER_SEES,
    ),
    ReasonedAction(
        name="release",
        description="Lift quarantine / end cool-down (re-checks DNS)",
        done="domain(s) released",
        call=lambda d, staff, why: _outcome(domain_release(domain=d, actor=staff, reason=why)),
        rows=lambda qs: qs.filter(status__in=PENALISED),
        nothing="None of the selected domains is in cool-down or quarantine.",
        note=CUSTOMER_SEES + " DNS is re-checked at once: the domain sends again only if its "
        "records check out, otherwise it waits for DNS.",
    ),
]
MAILBOX_ACTIONS = [
    ReasonedAction(
        name="pause",
        description="Pause",
        done="mailbox(es) paused",
        call=_pause,
        rows=lambda qs: qs.exclude(status=MailboxStatus.PAUSED),
        nothing="The selected mailboxes are already paused.",
        note=CUSTOMER_SEES,
    ),
    ReasonedAction(
        name="resume",
        description="Resume",
        done="mailbox(es) resumed",
        call=_resume,
        rows=lambda qs: qs.exclude(status=MailboxStatus.ACTIVE),
        nothing="The selected mailboxes are already active.",
        note=CUSTOMER_SEES,
    ),
    ReasonedAction(
        name="cooldown",
        description="Cool-down for 14 days",
        done="mailbox(es) in cool-down",
        call=lambda m, staff, why: mailbox_cooldown(mailbox=m, actor=staff, reason=why),
        note=CUSTOMER_SEES,
    ),
]


class DkimKeyInline(admin.TabularInline):
    model = DkimKey
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "selector",
        "state",
        "created_at",
        "activated_at",
        "retire_after",
        "retired_at",
    )

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class AuditTrailMixin:
    @admin.display(description="Audit trail")
    def audit_trail(self, obj: Model) -> str:
        url = reverse("admin:accounts_auditlog_changelist")
        return format_html(
            '<a href="{}?object_type={}&object_id={}">Audit log entries</a>',
            url,
            obj._meta.label,
            obj.pk,
        )


class TierFilter(admin.SimpleListFilter):
    """The tiers are fixed: listing them needs no DISTINCT over the whole table."""

    title = "tier"
    parameter_name = "tier"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(tier.value, tier.value) for tier in Tier]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(tier=self.value()) if self.value() else queryset


@admin.register(SendingDomain)
class SendingDomainAdmin(AuditTrailMixin, ServiceOwnedAdmin):
    # What support looks at first (status, score, tier) comes first: the list must fit beside
    # the navigation and the filters without scrolling sideways.
    list_display = ["name", "status_label", "score", "tier", "workspace_name", "dns_checked"]
    list_filter = [
        "status",
        TierFilter,
        "score_provisional",
        "provider",
        "sends_through",
        "created_at",
    ]
    search_fields = ["name", "public_id", "workspace__name", "workspace__public_id"]
    list_select_related = ["workspace"]
    # Every field is service-owned (status machine, DNS checks, scoring): the page only shows.
    fieldsets = [
        (
            None,
            {"fields": ["name", "public_id", "workspace", "provider", "is_demo", "created_at"]},
        ),
        (
            "Status",
            {"fields": ["status", "status_reason", "status_changed_at", "cooldown_until"]},
        ),
        (
            "Reputation",
            {
                "fields": [
                    "trust_score",
                    "tier",
                    "score_provisional",
                    "scoring_version",
                    "score_updated_at",
                    "rehab_started_at",
                    "score_metrics_table",
                ]
            },
        ),
        (
            "DNS",
            {
                "fields": [
                    "dns_checked_at",
                    "verified_at",
                    "next_check_at",
                    "ownership_token",
                    "dns_results_table",
                ]
            },
        ),
        (
            "How it sends",
            {
                "fields": [
                    "sends_through",
                    "dkim_confirmed_at",
                    "dkim_confirmed_selector",
                    "dkim_confirmed_auth_results",
                    "dkim_observation_table",
                ]
            },
        ),
        ("History", {"fields": ["messages_link", "audit_trail"]}),
    ]
    readonly_fields = [
        "score_metrics_table",
        "dns_results_table",
        "dkim_observation_table",
        "messages_link",
        "audit_trail",
    ]
    inlines = [DkimKeyInline]
    actions = DOMAIN_ACTIONS
    show_full_result_count = False

    @admin.display(description="Messages")
    def messages_link(self, domain: SendingDomain) -> str:
        url = reverse("admin:sending_message_changelist") + f"?domain__id__exact={domain.pk}"
        return format_html('<a href="{}">Outbound messages and their timelines</a>', url)

    @admin.display(description="Status", ordering="status")
    def status_label(self, domain: SendingDomain) -> str:
        label = domain.get_status_display()
        if domain.status == DomainStatus.COOLDOWN and domain.cooldown_until:
            return f"{label} until {domain.cooldown_until:%Y-%m-%d}"
        return label

    @admin.display(description="Workspace", ordering="workspace__name")
    def workspace_name(self, domain: SendingDomain) -> str:
        return domain.workspace.name

    @admin.display(description="DNS checked", ordering="dns_checked_at")
    def dns_checked(self, domain: SendingDomain) -> str:
        if domain.dns_checked_at is None:
            return "never"
        return f"{timezone.localtime(domain.dns_checked_at):%Y-%m-%d %H:%M}"

    @admin.display(description="Trust score", ordering="trust_score")
    def score(self, domain: SendingDomain) -> str:
        if domain.trust_score is None:
            return "-"
        return f"{domain.trust_score:.1f}" + (" (provisional)" if domain.score_provisional else "")

    @admin.display(description="Score metrics (window)")
    def score_metrics_table(self, domain: SendingDomain) -> str:
        if not domain.score_metrics:
            return "not scored yet"
        # Counts first, then rates.
        metrics = sorted(
            domain.score_metrics.items(), key=lambda kv: (kv[0].endswith("_percent"), kv[0])
        )
        rows = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td></tr>",
            ((key.replace("_", " "), value) for key, value in metrics),
        )
        return format_html("<table><tbody>{}</tbody></table>", rows)

    @admin.display(description="Latest DKIM observation")
    def dkim_observation_table(self, domain: SendingDomain) -> str:
        seen = domain.dkim_last_observation
        if not domain.own_servers:
            return "not needed: the platform signs with its own key"
        if not seen:
            return "no warm-up message checked yet"
        rows = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td></tr>",
            (
                (
                    label,
                    seen.get(key)
                    if key != "authentication_results"
                    else " | ".join(seen.get(key) or []),
                )
                for label, key in (
                    ("When", "at"),
                    ("Result", "code"),
                    ("Reason", "reason"),
                    ("Selector", "selector"),
                    ("Signed by", "signing_domain"),
                    ("Authentication-Results", "authentication_results"),
                )
            ),
        )
        return format_html("<table><tbody>{}</tbody></table>", rows)

    @admin.display(description="DNS results")
    def dns_results_table(self, domain: SendingDomain) -> str:
        if not domain.dns_results:
            return "not checked yet"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((r["kind"], r["host"], r["status"], r["message"]) for r in domain.dns_results),
        )
        return format_html("<table><tbody>{}</tbody></table>", rows)


class MailboxGrantInline(admin.StackedInline):
    """The OAuth grant a Google or Microsoft mailbox logs in with; tokens are never shown."""

    model = MailboxGrant
    can_delete = False
    extra = 0
    max_num = 0
    fields = readonly_fields = (
        "provider",
        "status",
        "problem",
        "scopes",
        "connected_at",
        "access_expires_at",
        "refresh_expires_at",
        "refreshed_at",
        "refresh_count",
    )


@admin.register(Mailbox)
class MailboxAdmin(AuditTrailMixin, ServiceOwnedAdmin):
    list_display = [
        "address",
        "workspace",
        "connection",
        "provider",
        "status",
        "daily_limit",
        "warmup_enabled",
        "connection_ok",
        "created_at",
    ]
    list_filter = ["status", "connection", "provider", "warmup_enabled", "connection_ok"]
    search_fields = ["local_part", "domain__name", "domain__workspace__public_id"]
    list_select_related = ["domain", "domain__workspace"]
    # Settings belong to the customer (changed through their pages and the API, audit-logged);
    # status, limit cuts and connection results to the services. Passwords are never shown.
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "domain",
                    "local_part",
                    "display_name",
                    "connection",
                    "provider",
                    "created_at",
                ]
            },
        ),
        (
            "Status",
            {
                "fields": [
                    "status",
                    "status_reason",
                    "status_changed_at",
                    "status_set_by_system",
                    "cooldown_until",
                ]
            },
        ),
        (
            "Daily limit",
            {
                "fields": [
                    "daily_limit",
                    "warmup_enabled",
                    "limit_cut_at",
                    "limit_before_cut",
                    "limit_restored_on",
                ]
            },
        ),
        (
            "Connection",
            {
                "fields": [
                    "smtp_host",
                    "smtp_port",
                    "smtp_security",
                    "smtp_username",
                    "imap_host",
                    "imap_port",
                    "imap_security",
                    "imap_username",
                    "connection_checked_at",
                    "connection_ok",
                    "connection_error",
                ]
            },
        ),
        ("History", {"fields": ["audit_trail"]}),
    ]
    readonly_fields = ["audit_trail"]
    inlines = [MailboxGrantInline]
    actions = MAILBOX_ACTIONS
    show_full_result_count = False

    @admin.display(description="Workspace", ordering="domain__workspace__name")
    def workspace(self, mailbox: Mailbox) -> str:
        return str(mailbox.domain.workspace)


@admin.register(Message)
class MessageAdmin(ServiceOwnedAdmin):
    """Every outbound message with its timeline: the hand-over and what the MTA reported."""

    # Narrow enough to fit beside the navigation: the domain is the sender's; the kind, the
    # transport and the attempts are filters and on the message's page.
    list_display = ["created_at", "recipient", "sender", "state", "problem"]
    list_filter = ["state", "kind", "transport", "created_at"]
    search_fields = ["=message_id", "=mta_id", "recipient", "sender", "domain__name"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "message_id",
                    "kind",
                    "campaign_ref",
                    "workspace",
                    "domain",
                    "mailbox",
                    "sender",
                    "recipient",
                    "subject",
                ]
            },
        ),
        (
            "Hand-over",
            {"fields": ["state", "transport", "mta_id", "attempts", "last_error", "timeline"]},
        ),
        ("Content", {"classes": ["collapse"], "fields": ["text_body", "html_body", "headers"]}),
    ]
    readonly_fields = ["timeline"]

    @admin.display(description="Last error")
    def problem(self, message: Message) -> str:
        text = message.last_error
        return text if len(text) <= 80 else text[:77] + "..."

    @admin.display(description="Timeline")
    def timeline(self, message: Message) -> str:
        # (time, order within the same second, what, detail): MTA records carry whole seconds,
        # so a record of the same second as a step of ours is shown after it.
        steps: list[tuple[Any, int, str, str]] = [(message.created_at, 0, "Reserved", "")]
        if message.claimed_at:
            steps.append((message.claimed_at, 1, f"Claimed (attempt {message.attempts})", ""))
        if message.handed_over_at:
            transport = message.get_transport_display()
            steps.append((message.handed_over_at, 2, f"Handed over ({transport})", ""))
        for event in message.events.order_by("occurred_at", "id"):
            steps.append((event.occurred_at, 3, event.get_kind_display(), event.detail))
        if message.finished_at and message.state == MessageState.FAILED:  # else an MTA record
            final = message.get_state_display()
            steps.append((message.finished_at, 4, final, message.last_error))
        steps.sort(key=lambda step: (step[0].replace(microsecond=0), step[1]))
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (timezone.localtime(at).strftime("%Y-%m-%d %H:%M:%S"), what, detail)
                for at, _order, what, detail in steps
            ),
        )
        return format_html(
            "<table><thead><tr><th>When</th><th>What</th><th>Detail</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )


# --- Suppression lists -------------------------------------------------------------------------
# Staff keep the platform's list here (entries every workspace's campaigns skip); workspaces keep
# their own on their suppressions page, and staff only see and, with a reason, remove those.

SUPPRESSION_NOTE = (
    "The reason is recorded in the audit log with your name. Mail may go to these recipients "
    "again at once: remove an unsubscribe or a complaint only when the person asked for it."
)


class ScopeFilter(admin.SimpleListFilter):
    title = "list"
    parameter_name = "scope"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("platform", "Platform-wide"), ("workspace", "A workspace's")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "platform":
            return queryset.filter(workspace__isnull=True)
        if self.value() == "workspace":
            return queryset.filter(workspace__isnull=False)
        return queryset


def _refusal(error: ApplicationError) -> forms.ValidationError:
    return forms.ValidationError(error.message)


class PlatformSuppressionForm(forms.ModelForm):
    """A platform-wide address: checked and normalised like every list's."""

    class Meta:
        model = Suppression
        fields = ["address", "reason", "source"]

    def clean_address(self) -> str:
        try:
            address = suppression_address_clean(self.cleaned_data["address"])
        except ApplicationError as error:
            raise _refusal(error) from None
        if Suppression.objects.filter(workspace__isnull=True, address=address).exists():
            raise forms.ValidationError(f"{address} is already on the platform's list.")
        return address


class PlatformDomainForm(forms.ModelForm):
    class Meta:
        model = SuppressedDomain
        fields = ["domain", "reason"]

    def clean_domain(self) -> str:
        try:
            name = suppressed_domain_clean(self.cleaned_data["domain"])
        except ApplicationError as error:
            raise _refusal(error) from None
        if SuppressedDomain.objects.filter(workspace__isnull=True, domain=name).exists():
            raise forms.ValidationError(f"{name} is already blocked platform-wide.")
        return name


class SuppressionListAdmin(AuditTrailMixin, ConsoleAdmin):
    """Rows are added (platform-wide only) through the services and removed by a reasoned
    action; nothing is edited in place."""

    show_full_result_count = False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    @admin.display(description="List", ordering="workspace__name")
    def scope(self, row: Suppression | SuppressedDomain) -> str:
        return "Platform-wide" if row.workspace is None else str(row.workspace)


@admin.register(Suppression)
class SuppressionAdmin(SuppressionListAdmin):
    form = PlatformSuppressionForm
    list_display = ["address", "scope", "reason", "source", "created_at"]
    list_filter = [ScopeFilter, "reason", "created_at"]
    search_fields = ["address", "workspace__public_id", "workspace__name"]
    list_select_related = ["workspace"]
    readonly_fields = ["audit_trail"]
    actions = [
        ReasonedAction(
            name="remove",
            description="Remove from the suppression list",
            done="address(es) removed from their list",
            call=lambda row, staff, why: suppression_remove(
                suppression=row, actor=staff, confirmed=True, why=why
            ),
            note=SUPPRESSION_NOTE,
        )
    ]

    def get_fields(self, request: HttpRequest, obj: Model | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("address", "reason", "source")
        return ("address", "workspace", "reason", "source", "created_at", "audit_trail")

    def save_model(
        self, request: HttpRequest, obj: Suppression, form: forms.ModelForm, change: bool
    ) -> None:
        added = suppression_add(
            workspace=None,
            actor=cast(User, request.user),
            address=obj.address,
            reason=obj.reason,
            source=obj.source,
        )
        obj.pk = added.row.pk


@admin.register(SuppressedDomain)
class SuppressedDomainAdmin(SuppressionListAdmin):
    form = PlatformDomainForm
    list_display = ["domain", "scope", "reason", "created_by", "created_at"]
    list_filter = [ScopeFilter, "created_at"]
    search_fields = ["domain", "workspace__public_id", "workspace__name"]
    list_select_related = ["workspace", "created_by"]
    readonly_fields = ["audit_trail"]
    actions = [
        ReasonedAction(
            name="unblock",
            description="Unblock (mail may go to the domain again)",
            done="domain(s) unblocked",
            call=lambda row, staff, why: suppressed_domain_unblock(
                suppressed_domain=row, actor=staff, why=why
            ),
            note=SUPPRESSION_NOTE,
        )
    ]

    def get_fields(self, request: HttpRequest, obj: Model | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("domain", "reason")
        return ("domain", "workspace", "reason", "created_by", "created_at", "audit_trail")

    def save_model(
        self, request: HttpRequest, obj: SuppressedDomain, form: forms.ModelForm, change: bool
    ) -> None:
        added = suppressed_domain_block(
            workspace=None,
            actor=cast(User, request.user),
            domain=obj.domain,
            reason=obj.reason,
        )
        obj.pk = added.row.pk


@admin.register(MailboxImport)
class MailboxImportAdmin(ServiceOwnedAdmin):
    """CSV imports of mailboxes, read-only: what each row became (the stored rows, encrypted,
    are not shown)."""

    list_display = [
        "file_name",
        "workspace",
        "status",
        "total",
        "created",
        "connected",
        "failed",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "created_at"]
    search_fields = ["file_name", "workspace__public_id", "workspace__name"]
    list_select_related = ["workspace"]
    date_hierarchy = "created_at"
    fields = [
        "workspace",
        "created_by",
        "file_name",
        "status",
        "error",
        "total",
        "created",
        "connected",
        "failed",
        "results",
        "created_at",
        "started_at",
        "finished_at",
    ]
