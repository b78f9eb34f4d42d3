"""Writes and side effects for users, workspaces, memberships, invitations, tokens and audit."""

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.apps import apps
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Model
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.crypto import secret_hash, secret_rotate
from accounts.models import (
    ApiToken,
    AuditLog,
    Invitation,
    Membership,
    Role,
    User,
    Workspace,
)
from config.errors import ApplicationError, PermissionDenied

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "tg_"


# --- Audit -------------------------------------------------------------------------------------


def audit_log_record(
    *,
    action: str,
    actor: User | None = None,
    obj: Model | None = None,
    workspace: Workspace | None = None,
    reason: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditLog:
    """Record a staff, customer or automatic (actor=None, "system") action."""
    return AuditLog.objects.create(
        action=action,
        actor=actor,
        workspace=workspace,
        object_type=obj._meta.label if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        reason=reason,
        before=before,
        after=after,
    )


# --- Live push ---------------------------------------------------------------------------------


def workspace_group(workspace: Workspace) -> str:
    return f"workspace.{workspace.public_id}"


def workspace_notify(*, workspace: Workspace, event: str, payload: dict[str, Any]) -> None:
    """Push `event` to the workspace's WebSocket group once the current transaction commits."""
    group = workspace_group(workspace)
    message = {"type": "workspace.event", "event": event, "payload": payload}

    def push() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            async_to_sync(layer.group_send)(group, message)
        except Exception:  # a lost live update must never break the write that caused it
            logger.exception("workspace_notify to %s failed", group)

    transaction.on_commit(push)


# --- Workspaces --------------------------------------------------------------------------------


def leaderboard_handle_new() -> str:
    """`Sender_` + 4-6 random digits, unique among workspaces."""
    for _ in range(50):
        digits = secrets.choice((4, 5, 6))
        handle = "Sender_" + "".join(secrets.choice("0123456789") for _ in range(digits))
        if not Workspace.objects.filter(leaderboard_handle=handle).exists():
            return handle
    raise ApplicationError("Could not allocate a leaderboard handle; try again.", code="busy")


def _clean_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ApplicationError(
            "A workspace needs a name.", fields={"name": ["This field is required."]}
        )
    if len(name) > 120:
        raise ApplicationError(
            "The workspace name is too long.", fields={"name": ["At most 120 characters."]}
        )
    return name


@transaction.atomic
def workspace_create(*, owner: User, name: str) -> Workspace:
    """Create a workspace with `owner` as its first owner."""
    workspace = Workspace.objects.create(
        name=_clean_name(name), leaderboard_handle=leaderboard_handle_new()
    )
    Membership.objects.create(workspace=workspace, user=owner, role=Role.OWNER)
    audit_log_record(action="workspace.create", actor=owner, obj=workspace, workspace=workspace)
    return workspace


@transaction.atomic
def workspace_rename(*, workspace: Workspace, actor: User, name: str) -> Workspace:
    """Rename a workspace."""
    before = {"name": workspace.name}
    workspace.name = _clean_name(name)
    workspace.save(update_fields=["name"])
    audit_log_record(
        action="workspace.rename",
        actor=actor,
        obj=workspace,
        workspace=workspace,
        before=before,
        after={"name": workspace.name},
    )
    return workspace


def _owner_count(workspace: Workspace) -> int:
    # Locked, so two owners demoting each other at once cannot leave none.
    return len(workspace.memberships.select_for_update().filter(role=Role.OWNER))


@transaction.atomic
def membership_role_change(*, membership: Membership, actor: User, role: str) -> Membership:
    """Change a member's role; only owners may grant or remove ownership."""
    if role not in Role.values:
        raise ApplicationError("Unknown role.", fields={"role": [f"Choose one of {Role.values}."]})
    actor_membership = Membership.objects.get(workspace=membership.workspace, user=actor)
    touches_owner = Role.OWNER in (role, membership.role)
    if not actor_membership.has_role(Role.OWNER if touches_owner else Role.ADMIN):
        raise PermissionDenied(
            "Only an owner can grant or remove ownership."
            if touches_owner
            else "Only owners and admins can change roles."
        )
    demotes_owner = membership.role == Role.OWNER and role != Role.OWNER
    if demotes_owner and _owner_count(membership.workspace) <= 1:
        raise ApplicationError("A workspace must keep at least one owner.", code="last_owner")
    before = {"role": membership.role}
    membership.role = role
    membership.save(update_fields=["role"])
    audit_log_record(
        action="membership.role_change",
        actor=actor,
        obj=membership,
        workspace=membership.workspace,
        before=before,
        after={"role": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: User) -> None:
    """Remove a member (or leave, when actor is the member)."""
    actor_membership = Membership.objects.get(workspace=membership.workspace, user=actor)
    leaving = membership.user_id == actor.pk
    if not leaving:
        needed = Role.OWNER if membership.role in (Role.OWNER, Role.ADMIN) else Role.ADMIN
        if not actor_membership.has_role(needed):
            raise PermissionDenied("You cannot remove this member.")
    if membership.role == Role.OWNER and _owner_count(membership.workspace) <= 1:
        raise ApplicationError("A workspace must keep at least one owner.", code="last_owner")
    ApiToken.objects.filter(
        workspace=membership.workspace, user=membership.user, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    audit_log_record(
        action="membership.remove",
        actor=actor,
        obj=membership,
        workspace=membership.workspace,
        before={"user": membership.user.email, "role": membership.role},
    )
    membership.delete()


# --- Invitations -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedSecret:
    """A freshly issued secret, shown once; only its hash is stored."""

    obj: Model
    secret: str


@transaction.atomic
def invitation_create(
    *,
    workspace: Workspace,
    inviter: User,
    email: str,
    role: str = Role.MEMBER,
    site_url: str | None = None,
) -> IssuedSecret:
    """Invite `email` to the workspace and send the link (on `site_url`, else SITE_URL)."""
    email = User.objects.normalize_email(email or "").strip().lower()
    if role not in Role.values:
        raise ApplicationError("Unknown role.", fields={"role": [f"Choose one of {Role.values}."]})
    inviter_membership = Membership.objects.get(workspace=workspace, user=inviter)
    if not inviter_membership.has_role(Role.ADMIN):
        raise PermissionDenied("Only owners and admins can invite people.")
    if role == Role.OWNER and not inviter_membership.has_role(Role.OWNER):
        raise PermissionDenied("Only an owner can invite another owner.")
    if workspace.memberships.filter(user__email__iexact=email).exists():
        raise ApplicationError(
            f"{email} is already a member.", fields={"email": ["Already a member."]}
        )
    token = secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            invitation = Invitation.objects.create(
                workspace=workspace,
                email=email,
                role=role,
                token_hash=secret_hash(token),
                invited_by=inviter,
                expires_at=timezone.now() + timedelta(days=settings.INVITATION_TTL_DAYS),
            )
    except IntegrityError:
        raise ApplicationError(
            f"{email} already has an open invitation.", fields={"email": ["Already invited."]}
        ) from None
    audit_log_record(
        action="invitation.create",
        actor=inviter,
        obj=invitation,
        workspace=workspace,
        after={"email": email, "role": role},
    )
    link = (site_url or settings.SITE_URL).rstrip("/") + reverse("invitation_accept", args=[token])
    context = {"invitation": invitation, "link": link, "product": settings.PRODUCT_NAME}
    transaction.on_commit(
        lambda: send_mail(
            subject=f"[{settings.PRODUCT_NAME}] {inviter.email} invited you to {workspace.name}",
            message=render_to_string("accounts/email/invitation.txt", context),
            from_email=None,
            recipient_list=[email],
        )
    )
    return IssuedSecret(obj=invitation, secret=token)


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user: User) -> Membership:
    """Join the workspace of an open invitation addressed to the user's email."""
    locked = Invitation.objects.select_for_update().filter(pk=invitation.pk).first()
    if locked is None or not locked.is_open():
        raise ApplicationError("This invitation is no longer valid.", code="invitation_invalid")
    invitation = locked
    if invitation.email.lower() != user.email.lower():
        raise ApplicationError(
            f"This invitation was sent to {invitation.email}; sign in with that address.",
            code="invitation_wrong_user",
        )
    membership, _ = Membership.objects.get_or_create(
        workspace=invitation.workspace, user=user, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    audit_log_record(
        action="invitation.accept",
        actor=user,
        obj=invitation,
        workspace=invitation.workspace,
        after={"role": membership.role},
    )
    return membership


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: User) -> None:
    """Revoke an open invitation."""
    if not Membership.objects.get(workspace=invitation.workspace, user=actor).has_role(Role.ADMIN):
        raise PermissionDenied("Only owners and admins can revoke invitations.")
    if invitation.accepted_at or invitation.revoked_at:
        raise ApplicationError("This invitation is already closed.")
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit_log_record(
        action="invitation.revoke", actor=actor, obj=invitation, workspace=invitation.workspace
    )


def invitations_expire(*, now=None) -> int:
    """Close invitations past their expiry (periodic)."""
    now = now or timezone.now()
    return Invitation.objects.filter(
        accepted_at__isnull=True, revoked_at__isnull=True, expires_at__lte=now
    ).update(revoked_at=now)


# --- API tokens --------------------------------------------------------------------------------


@transaction.atomic
def api_token_create(*, user: User, workspace: Workspace, name: str) -> IssuedSecret:
    """Issue a personal token bound to one workspace; the secret is returned once."""
    name = " ".join((name or "").split())
    if not name or len(name) > 80:
        raise ApplicationError(
            "Give the token a name of 1 to 80 characters.",
            fields={"name": ["1 to 80 characters."]},
        )
    if not Membership.objects.filter(workspace=workspace, user=user).exists():
        raise PermissionDenied("You are not a member of this workspace.")
    active = ApiToken.objects.filter(user=user, revoked_at__isnull=True).count()
    if active >= settings.API_TOKENS_PER_USER:
        raise ApplicationError(
            f"You already have {active} active tokens; revoke one first.", code="token_limit"
        )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        workspace=workspace,
        name=name,
        prefix=secret[:10],
        token_hash=secret_hash(secret),
    )
    audit_log_record(
        action="api_token.create", actor=user, obj=token, workspace=workspace, after={"name": name}
    )
    return IssuedSecret(obj=token, secret=secret)


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor: User) -> None:
    """Revoke a token: its owner, or a workspace owner, may do it."""
    if token.user_id != actor.pk:
        membership = Membership.objects.filter(workspace=token.workspace, user=actor).first()
        if membership is None or not membership.has_role(Role.OWNER):
            raise PermissionDenied("Only the token's owner or a workspace owner can revoke it.")
    _api_token_revoke(token=token, actor=actor, reason="")


@transaction.atomic
def api_token_revoke_by_staff(
    *, token: ApiToken, actor: User, reason: str = "staff action"
) -> None:
    """Revoke a token from the operations console."""
    _api_token_revoke(token=token, actor=actor, reason=reason)


def _api_token_revoke(*, token: ApiToken, actor: User, reason: str) -> None:
    if token.revoked_at is not None:
        return
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit_log_record(
        action="api_token.revoke", actor=actor, obj=token, workspace=token.workspace, reason=reason
    )


def api_token_authenticate(secret: str) -> ApiToken | None:
    """The active token for a presented secret, or None; records last use at most once a minute."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    token = (
        ApiToken.objects.select_related("user", "workspace")
        .filter(token_hash=secret_hash(secret), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


# --- Staff -------------------------------------------------------------------------------------


@transaction.atomic
def user_set_active(*, user: User, actor: User | None, active: bool, reason: str = "") -> User:
    """Deactivate (or reactivate) a user account; their tokens stop working at once."""
    if user.is_active == active:
        return user
    before = {"is_active": user.is_active}
    user.is_active = active
    user.save(update_fields=["is_active"])
    audit_log_record(
        action="user.activate" if active else "user.deactivate",
        actor=actor,
        obj=user,
        reason=reason,
        before=before,
        after={"is_active": active},
    )
    return user


def workspace_owners_email(*, workspace: Workspace, subject: str, body: str) -> None:
    """Email the workspace's owners once the current transaction commits."""
    owners = list(
        workspace.memberships.filter(role=Role.OWNER).values_list("user__email", flat=True)
    )
    if owners:
        transaction.on_commit(
            lambda: send_mail(
                subject=f"[{settings.PRODUCT_NAME}] {subject}",
                message=body,
                from_email=None,
                recipient_list=owners,
                fail_silently=True,
            )
        )


# Encrypted values inside JSON: allauth's authenticators keep the TOTP secret and the
# recovery-code seed there (encrypted by accounts.adapters.MFAAdapter).
MFA_ENCRYPTED_KEYS = ("secret", "seed")


def secrets_reencrypt(*, batch: int = 500) -> dict[str, int]:
    """Re-encrypt every stored secret under the first key of SECRET_ENCRYPTION_KEYS (the step
    between adding a new key and dropping the old one): each model field named `*_encrypted`,
    and the secrets in two-factor authenticators. Returns how many values each model had."""
    counts: dict[str, int] = {}
    for model in apps.get_models():
        names = [f.name for f in model._meta.concrete_fields if f.name.endswith("_encrypted")]
        if names:
            counts[model._meta.label] = _reencrypt_fields(model, names, batch)
    authenticator = apps.get_model("mfa", "Authenticator")
    rotated = 0
    for row in authenticator.objects.only("pk", "data").iterator(chunk_size=batch):
        data = dict(row.data or {})
        keys = [key for key in MFA_ENCRYPTED_KEYS if data.get(key)]
        for key in keys:
            data[key] = secret_rotate(data[key])
        if keys:
            authenticator.objects.filter(pk=row.pk).update(data=data)
            rotated += len(keys)
    counts[authenticator._meta.label] = rotated
    return counts


def _reencrypt_fields(model: type[Model], names: list[str], batch: int) -> int:
    rotated = 0
    for row in model._default_manager.only("pk", *names).iterator(chunk_size=batch):
        changed = {name: secret_rotate(value) for name in names if (value := getattr(row, name))}
        if changed:
            model._default_manager.filter(pk=row.pk).update(**changed)
            rotated += len(changed)
    return rotated
