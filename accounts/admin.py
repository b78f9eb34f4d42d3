from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import Count, Model, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from accounts import services
from accounts.models import ApiToken, AuditLog, Invitation, Membership, User, Workspace
from config.admin_actions import ConsoleAdmin, ReasonedAction, ServiceOwnedAdmin

AUDIT_NOTE = "The reason is recorded in the audit log with your name."


class MembershipInline(admin.TabularInline):
    """Shown, not edited: roles and removals go through the services that keep every workspace
    an owner and revoke a leaver's tokens (the workspace's own team page)."""

    model = Membership
    extra = 0
    fields = readonly_fields = ("user", "workspace", "role", "created_at")

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


def _set_active(user: User, staff: User, reason: str, *, active: bool) -> User:
    return services.user_set_active(user=user, actor=staff, active=active, reason=reason)


@admin.register(User)
class UserAdmin(ConsoleAdmin, BaseUserAdmin):
    ordering = ["-date_joined"]
    list_display = ["email", "full_name", "is_staff", "is_active", "date_joined", "last_login"]
    list_filter = ["is_staff", "is_superuser", "is_active", "date_joined"]
    search_fields = ["email", "full_name"]
    # Deactivation is an action (audit-logged, with a reason), not a checkbox.
    readonly_fields = ["is_active", "date_joined", "last_login"]
    inlines = [MembershipInline]
    actions = [
        ReasonedAction(
            name="deactivate",
            description="Deactivate",
            done="user(s) deactivated",
            call=lambda user, staff, why: _set_active(user, staff, why, active=False),
            rows=lambda qs: qs.filter(is_active=True),
            nothing="The selected users are already deactivated.",
            note=AUDIT_NOTE + " They are signed out at once and their API tokens stop working.",
        ),
        ReasonedAction(
            name="reactivate",
            description="Reactivate",
            done="user(s) reactivated",
            call=lambda user, staff, why: _set_active(user, staff, why, active=True),
            rows=lambda qs: qs.filter(is_active=False),
            nothing="The selected users are already active.",
            note=AUDIT_NOTE,
        ),
    ]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name",)}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    """Workspaces are created and renamed by their owners (audit-logged); staff look them up."""

    list_display = ["name", "public_id", "leaderboard_handle", "member_count", "created_at"]
    search_fields = ["name", "public_id", "leaderboard_handle", "memberships__user__email"]
    list_filter = ["created_at"]
    fields = ["name", "public_id", "leaderboard_handle", "created_at"]
    inlines = [MembershipInline]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workspace]:
        return super().get_queryset(request).annotate(member_count=Count("memberships"))

    @admin.display(ordering="member_count")
    def member_count(self, workspace: Workspace) -> int:
        return workspace.member_count  # type: ignore[attr-defined]  # annotated in get_queryset


@admin.register(Membership)
class MembershipAdmin(ServiceOwnedAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role", "created_at"]
    search_fields = ["user__email", "workspace__name", "workspace__public_id"]
    list_select_related = ["user", "workspace"]


@admin.register(Invitation)
class InvitationAdmin(ServiceOwnedAdmin):
    list_display = [
        "email",
        "workspace",
        "role",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
        "revoked_at",
    ]
    list_filter = ["role", "created_at", "accepted_at", "revoked_at"]
    search_fields = ["email", "workspace__name", "workspace__public_id"]
    list_select_related = ["workspace", "invited_by"]
    exclude = ["token_hash"]


@admin.register(ApiToken)
class ApiTokenAdmin(ServiceOwnedAdmin):
    list_display = [
        "name",
        "prefix",
        "user",
        "workspace",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["created_at", "revoked_at"]
    search_fields = ["name", "prefix", "user__email", "workspace__public_id"]
    list_select_related = ["user", "workspace"]
    exclude = ["token_hash"]
    actions = [
        ReasonedAction(
            name="revoke",
            description="Revoke",
            done="token(s) revoked",
            call=lambda token, staff, why: services.api_token_revoke_by_staff(
                token=token, actor=staff, reason=why
            ),
            rows=lambda qs: qs.filter(revoked_at__isnull=True),
            nothing="The selected tokens are already revoked.",
            note=AUDIT_NOTE + " The token stops working at once.",
        )
    ]


class ActorFilter(admin.SimpleListFilter):
    title = "actor"
    parameter_name = "actor_kind"

    def lookups(self, request, model_admin):
        return [("system", "System (automatic)"), ("staff", "Staff"), ("user", "Customers")]

    def queryset(self, request, queryset):
        if self.value() == "system":
            return queryset.filter(actor__isnull=True)
        if self.value() == "staff":
            return queryset.filter(actor__is_staff=True)
        if self.value() == "user":
            return queryset.filter(actor__is_staff=False)
        return queryset


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    # The reason is what support reads: it gets the room (the workspace is on the entry's page,
    # and searchable by public id).
    list_display = ["when", "actor_label", "action", "object_repr", "reason"]
    list_filter = [ActorFilter, "action", "object_type", "created_at"]
    search_fields = [
        "action",
        "object_repr",
        "object_id",
        "reason",
        "actor__email",
        "workspace__public_id",
    ]
    list_select_related = ["actor", "workspace"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditLog | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditLog | None = None) -> bool:
        return False

    @admin.display(description="When", ordering="created_at")
    def when(self, log: AuditLog) -> str:
        return f"{timezone.localtime(log.created_at):%Y-%m-%d %H:%M:%S}"

    @admin.display(description="Actor")
    def actor_label(self, log: AuditLog) -> str:
        return log.actor_label
