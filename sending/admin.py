from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from config.errors import ApplicationError
from sending.models import DkimKey, Mailbox, SendingDomain
from sending.services.domains import domain_release
from sending.services.mailboxes import mailbox_cooldown, mailbox_pause, mailbox_resume
from sending.services.status import domain_cooldown, domain_quarantine
from sending.services.verification import domain_verify

STAFF_REASON = "Staff action from the operations console."


def _run(modeladmin: admin.ModelAdmin, request: HttpRequest, rows, call, done: str) -> None:
    """Apply a service to each selected row; report refusals row by row."""
    ok = 0
    for row in rows:
        try:
            call(row)
            ok += 1
        except ApplicationError as error:
            modeladmin.message_user(request, f"{row}: {error.message}", messages.ERROR)
    if ok:
        modeladmin.message_user(request, f"{ok} {done}.", messages.SUCCESS)


def staff_action(name: str, description: str, done: str, call, rows=None):
    """An admin action that applies a service `call(row, staff_user)` to each selected row."""

    @admin.action(description=description)
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
        targets = rows(queryset) if rows else queryset
        _run(modeladmin, request, targets, lambda row: call(row, request.user), done)

    action.__name__ = name
    return action


def _mailboxes_of(status_filter):
    def rows(domains: QuerySet[SendingDomain]) -> QuerySet[Mailbox]:
        return status_filter(Mailbox.objects.filter(domain__in=domains)).select_related(
            "domain__workspace"
        )

    return rows


def _pause(mailbox: Mailbox, staff) -> Mailbox:
    return mailbox_pause(mailbox=mailbox, actor=staff, reason=STAFF_REASON)


def _resume(mailbox: Mailbox, staff) -> Mailbox:
    return mailbox_resume(mailbox=mailbox, actor=staff, reason=STAFF_REASON)


DOMAIN_ACTIONS = [
    staff_action(
        "reverify",
        "Re-verify DNS now",
        "domain(s) re-checked",
        lambda d, staff: domain_verify(domain=d, actor=staff),
    ),
    staff_action(
        "pause_mailboxes",
        "Pause all its mailboxes",
        "mailbox(es) paused",
        _pause,
        rows=_mailboxes_of(lambda qs: qs.filter(status="active")),
    ),
    staff_action(
        "resume_mailboxes",
        "Resume all its mailboxes",
        "mailbox(es) resumed",
        _resume,
        rows=_mailboxes_of(lambda qs: qs.exclude(status="active")),
    ),
    staff_action(
        "cooldown",
        "Cool-down for 14 days",
        "domain(s) in cool-down",
        lambda d, staff: domain_cooldown(domain=d, actor=staff, reason=STAFF_REASON),
    ),
    staff_action(
        "quarantine",
        "Quarantine (stop all sending)",
        "domain(s) quarantined",
        lambda d, staff: domain_quarantine(domain=d, actor=staff, reason=STAFF_REASON),
    ),
    staff_action(
        "release",
        "Lift quarantine / end cool-down",
        "domain(s) released",
        lambda d, staff: domain_release(domain=d, actor=staff, reason=STAFF_REASON),
    ),
]
MAILBOX_ACTIONS = [
    staff_action(
        "pause",
        "Pause",
        "mailbox(es) paused",
        _pause,
    ),
    staff_action(
        "resume",
        "Resume",
        "mailbox(es) resumed",
        _resume,
    ),
    staff_action(
        "cooldown",
        "Cool-down for 14 days",
        "mailbox(es) in cool-down",
        lambda m, staff: mailbox_cooldown(mailbox=m, actor=staff, reason=STAFF_REASON),
    ),
]


class DkimKeyInline(admin.TabularInline):
    model = DkimKey
    extra = 0
    can_delete = False
    fields = ["selector", "state", "created_at", "activated_at", "retire_after", "retired_at"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class AuditTrailMixin:
    @admin.display(description="Audit trail")
    def audit_trail(self, obj) -> str:
        url = reverse("admin:accounts_auditlog_changelist")
        return format_html(
            '<a href="{}?object_type={}&q={}">Audit log entries</a>',
            url,
            obj._meta.label,
            obj.pk,
        )


@admin.register(SendingDomain)
class SendingDomainAdmin(AuditTrailMixin, admin.ModelAdmin):
    list_display = [
        "name",
        "workspace",
        "status",
        "provider",
        "dns_checked_at",
        "verified_at",
        "cooldown_until",
        "created_at",
    ]
    list_filter = ["status", "provider", "created_at"]
    search_fields = ["name", "public_id", "workspace__name", "workspace__public_id"]
    list_select_related = ["workspace"]
    readonly_fields = [
        "public_id",
        "workspace",
        "name",
        "status",
        "status_reason",
        "status_changed_at",
        "cooldown_until",
        "ownership_token",
        "provider",
        "dns_checked_at",
        "verified_at",
        "next_check_at",
        "created_at",
        "dns_results_table",
        "audit_trail",
    ]
    exclude = ["dns_results"]
    inlines = [DkimKeyInline]
    actions = DOMAIN_ACTIONS
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

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


@admin.register(Mailbox)
class MailboxAdmin(AuditTrailMixin, admin.ModelAdmin):
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
    readonly_fields = [
        "domain",
        "local_part",
        "connection",
        "provider",
        "status",
        "status_reason",
        "status_changed_at",
        "cooldown_until",
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
        "created_at",
        "audit_trail",
    ]
    exclude = ["smtp_password_encrypted", "imap_password_encrypted"]
    actions = MAILBOX_ACTIONS
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Workspace")
    def workspace(self, mailbox: Mailbox) -> str:
        return str(mailbox.domain.workspace)
