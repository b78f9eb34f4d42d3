"""Reads for accounts: every query a customer can trigger is scoped to their memberships."""

from django.db.models import F, QuerySet

from accounts.models import ApiToken, AuditLog, Invitation, Membership, User, Workspace
from accounts.crypto import secret_hash


def workspace_list(*, user: User) -> QuerySet[Workspace]:
    """The user's workspaces, each annotated with the user's `role` in it."""
    return (
        Workspace.objects.filter(memberships__user=user)
        .annotate(role=F("memberships__role"))
        .order_by("name", "id")
    )


def membership_list_for_user(*, user: User) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(user=user)
        .select_related("workspace")
        .order_by("workspace__name", "workspace_id")
    )


def membership_get(*, user: User, workspace_public_id: str) -> Membership | None:
    """The user's membership in a workspace, or None (callers answer 404, never 403)."""
    if not user.is_authenticated:
        return None
    return (
        Membership.objects.select_related("workspace")
        .filter(user=user, workspace__public_id=workspace_public_id)
        .first()
    )


def membership_list(*, workspace: Workspace) -> QuerySet[Membership]:
    return workspace.memberships.select_related("user").order_by("created_at")


def invitation_list_open(*, workspace: Workspace) -> QuerySet[Invitation]:
    return workspace.invitations.filter(
        accepted_at__isnull=True, revoked_at__isnull=True
    ).select_related("invited_by")


def api_token_list(*, workspace: Workspace, user: User, all_users: bool) -> QuerySet[ApiToken]:
    tokens = workspace.api_tokens.filter(revoked_at__isnull=True).select_related("user")
    return tokens if all_users else tokens.filter(user=user)


def audit_log_list(*, workspace: Workspace, limit: int = 50) -> QuerySet[AuditLog]:
    return workspace.audit_logs.select_related("actor")[:limit]


def invitation_get_by_token(token: str) -> Invitation | None:
    return (
        Invitation.objects.select_related("workspace", "invited_by")
        .filter(token_hash=secret_hash(token))
        .first()
    )


def invitation_list_for_user(*, user: User) -> QuerySet[Invitation]:
    """Open invitations addressed to the user's (verified) email."""
    return Invitation.objects.filter(
        email__iexact=user.email, accepted_at__isnull=True, revoked_at__isnull=True
    ).select_related("workspace", "invited_by")
