from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from accounts import services
from accounts.models import ApiToken, AuditLog, Invitation, Membership, User, Workspace


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user", "workspace"]
    fields = ["user", "workspace", "role", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["-date_joined"]
    list_display = ["email", "full_name", "is_staff", "is_active", "date_joined", "last_login"]
    list_filter = ["is_staff", "is_superuser", "is_active", "date_joined"]
    search_fields = ["email", "full_name"]
    readonly_fields = ["date_joined", "last_login"]
    inlines = [MembershipInline]
    actions = ["deactivate", "reactivate"]
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

    @admin.action(description="Deactivate selected users (audit-logged)")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._set_active(request, queryset, active=False)

    @admin.action(description="Reactivate selected users (audit-logged)")
    def reactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._set_active(request, queryset, active=True)

    def _set_active(self, request: HttpRequest, queryset: QuerySet[User], *, active: bool) -> None:
        for user in queryset:
            services.user_set_active(
                user=user, actor=request.user, active=active, reason="staff action"
            )
        verb = "reactivated" if active else "deactivated"
        self.message_user(request, f"{queryset.count()} user(s) {verb}.", messages.SUCCESS)


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "public_id", "leaderboard_handle", "member_count", "created_at"]
    search_fields = ["name", "public_id", "leaderboard_handle", "memberships__user__email"]
    list_filter = ["created_at"]
    readonly_fields = ["public_id", "leaderboard_handle", "created_at"]
    inlines = [MembershipInline]
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workspace]:
        return super().get_queryset(request).annotate(member_count=Count("memberships"))

    @admin.display(ordering="member_count")
    def member_count(self, workspace: Workspace) -> int:
        return workspace.member_count


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role", "created_at"]
    search_fields = ["user__email", "workspace__name", "workspace__public_id"]
    list_select_related = ["user", "workspace"]
    autocomplete_fields = ["user", "workspace"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
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
    readonly_fields = ["token_hash", "created_at", "accepted_at", "accepted_by", "revoked_at"]
    autocomplete_fields = ["workspace", "invited_by"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
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
    readonly_fields = [
        "prefix",
        "token_hash",
        "created_at",
        "last_used_at",
        "revoked_at",
        "user",
        "workspace",
    ]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke selected tokens (audit-logged)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset.filter(revoked_at__isnull=True):
            services.api_token_revoke_by_staff(token=token, actor=request.user)
        self.message_user(request, "Tokens revoked.", messages.SUCCESS)


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
    list_display = ["created_at", "actor_label", "action", "object_repr", "workspace", "reason"]
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

    @admin.display(description="Actor")
    def actor_label(self, log: AuditLog) -> str:
        return log.actor_label
