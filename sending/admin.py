from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from config.errors import ApplicationError
from sending import services
from sending.models import DkimKey, Mailbox, SendingDomain

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
    actions = [
        "reverify",
        "pause_mailboxes",
        "resume_mailboxes",
        "cooldown",
        "quarantine",
        "release",
    ]
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

    @admin.action(description="Re-verify DNS now")
    def reverify(self, request: HttpRequest, queryset: QuerySet[SendingDomain]) -> None:
        _run(
            self,
            request,
            queryset,
            lambda d: services.domain_verify(domain=d, actor=request.user),
            "domain(s) re-checked",
        )

    @admin.action(description="Pause all its mailboxes")
    def pause_mailboxes(self, request: HttpRequest, queryset: QuerySet[SendingDomain]) -> None:
        mailboxes = Mailbox.objects.filter(domain__in=queryset, status="active")
        _run(
            self,
            request,
            mailboxes.select_related("domain__workspace"),
            lambda m: services.mailbox_pause(mailbox=m, actor=request.user, reason=STAFF_REASON),
            "mailbox(es) paused",
        )

    @admin.action(description="Resume all its mailboxes")
    def resume_mailboxes(self, request: HttpRequest, queryset: QuerySet[SendingDomain]) -> None:
        mailboxes = Mailbox.objects.filter(domain__in=queryset).exclude(status="active")
        _run(
            self,
            request,
            mailboxes.select_related("domain__workspace"),
            lambda m: services.mailbox_resume(mailbox=m, actor=request.user, reason=STAFF_REASON),
            "mailbox(es) resumed",
        )

    @admin.action(description="Cool-down for 14 days")
    def cooldown(self, request: HttpRequest, queryset: QuerySet[SendingDomain]) -> None:
        _run(
            self,
            request,
            queryset,
            lambda d: services.domain_cooldown(domain=d, actor=request.user, reason=STAFF_REASON),
            "domain(s) in cool-down",
        )

    @admin.action(description="Quarantine (stop all sending)")
    def quarantine(self, request: HttpRequest, queryset: QuerySet[SendingDomain]) -> None:
        _run(
            self,
            request,
            queryset,
            lambda d: services.domain_quarantine(domain=d, actor=request.user, reason=STAFF_REASON),
            "domain(s) quarantined",
        )

    @admin.action(description="Lift quarantine / end cool-down")
    def release(self, request: HttpRequest, queryset: QuerySet[SendingDomain]) -> None:
        _run(
            self,
            request,
            queryset,
            lambda d: services.domain_release(domain=d, actor=request.user, reason=STAFF_REASON),
            "domain(s) released",
        )


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
    actions = ["pause", "resume", "cooldown"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Workspace")
    def workspace(self, mailbox: Mailbox) -> str:
        return str(mailbox.domain.workspace)

    @admin.action(description="Pause")
    def pause(self, request: HttpRequest, queryset: QuerySet[Mailbox]) -> None:
        _run(
            self,
            request,
            queryset,
            lambda m: services.mailbox_pause(mailbox=m, actor=request.user, reason=STAFF_REASON),
            "mailbox(es) paused",
        )

    @admin.action(description="Resume")
    def resume(self, request: HttpRequest, queryset: QuerySet[Mailbox]) -> None:
        _run(
            self,
            request,
            queryset,
            lambda m: services.mailbox_resume(mailbox=m, actor=request.user, reason=STAFF_REASON),
            "mailbox(es) resumed",
        )

    @admin.action(description="Cool-down for 14 days")
    def cooldown(self, request: HttpRequest, queryset: QuerySet[Mailbox]) -> None:
        _run(
            self,
            request,
            queryset,
            lambda m: services.mailbox_cooldown(mailbox=m, actor=request.user, reason=STAFF_REASON),
            "mailbox(es) in cool-down",
        )
