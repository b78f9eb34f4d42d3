"""Writes for a workspace's webhook endpoints: add, change, delete, disable and re-enable."""

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.crypto import secret_decrypt, secret_encrypt
from accounts.models import Membership, Role, User, Workspace
from accounts.services import audit_log_record, workspace_owners_email
from config.errors import ApplicationError, PermissionDenied
from webhooks.models import DeliveryState, EventType, WebhookDelivery, WebhookEndpoint
from webhooks.signing import secret_new
from webhooks.transport import host_is_internal

MAX_ENDPOINTS = 20
URL_MAX = 2000


def private_hosts_allowed() -> bool:
    """Loopback and plain http only for development (DEBUG) or tests (the setting)."""
    return bool(settings.DEBUG or getattr(settings, "WEBHOOKS_ALLOW_PRIVATE_HOSTS", False))


def require_admin(*, workspace: Workspace, user: User) -> None:
    """Refuse unless `user` is an owner or admin of the workspace."""
    membership = Membership.objects.filter(workspace=workspace, user=user).first()
    if membership is None or not membership.has_role(Role.ADMIN):
        raise PermissionDenied("Only owners and admins can change webhooks.")


def url_clean(url: str) -> str:
    """The endpoint URL, or a refusal that names the `url` field."""

    def refuse(message: str) -> ApplicationError:
        return ApplicationError(message, code="invalid_url", fields={"url": [message]})

    url = (url or "").strip()
    if not url:
        raise refuse("Give the URL that should receive the events.")
    if len(url) > URL_MAX:
        raise refuse(f"The URL is longer than {URL_MAX} characters.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError:
        raise refuse("This is not a valid URL.") from None
    allowed = ("https", "http") if private_hosts_allowed() else ("https",)
    if parts.scheme not in allowed:
        raise refuse("The URL must start with https:// (events are only sent encrypted).")
    if not parts.hostname:
        raise refuse("The URL has no host name.")
    if parts.username or parts.password:
        raise refuse("Leave user names and passwords out of the URL; verify the signature.")
    if parts.fragment:
        raise refuse("Leave the #fragment out of the URL.")
    if host_is_internal(parts.hostname) and not private_hosts_allowed():
        raise refuse("The URL points to an internal address; give a public host name.")
    return url


def events_clean(events: Sequence[str] | None) -> list[str]:
    """The subscribed types in their canonical order; empty (or None) means every type."""
    given = [str(e).strip() for e in (events or []) if str(e).strip()]
    unknown = sorted(set(given) - set(EventType.values))
    if unknown:
        message = f"Unknown event type {unknown[0]}; use one of: {', '.join(EventType.values)}."
        raise ApplicationError(message, code="unknown_event_type", fields={"events": [message]})
    return [value for value in EventType.values if value in given]


def description_clean(description: str) -> str:
    description = (description or "").strip()
    if len(description) > 200:
        message = "Keep the description to 200 characters."
        raise ApplicationError(message, fields={"description": [message]})
    return description


def _state(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "url": endpoint.url,
        "description": endpoint.description,
        "events": endpoint.events,
        "active": endpoint.active,
    }


@transaction.atomic
def endpoint_create(
    *,
    workspace: Workspace,
    actor: User,
    url: str,
    events: Sequence[str] | None = None,
    description: str = "",
) -> tuple[WebhookEndpoint, str]:
    """Add an endpoint; returns it with its signing secret (the caller shows it once)."""
    require_admin(workspace=workspace, user=actor)
    url = url_clean(url)
    cleaned = events_clean(events)
    description = description_clean(description)
    Workspace.objects.select_for_update().filter(pk=workspace.pk).first()  # serialises the count
    if WebhookEndpoint.objects.filter(workspace=workspace).count() >= MAX_ENDPOINTS:
        raise ApplicationError(
            f"A workspace can have at most {MAX_ENDPOINTS} webhook endpoints.", code="limit"
        )
    secret = secret_new()
    endpoint = WebhookEndpoint.objects.create(
        workspace=workspace,
        url=url,
        events=cleaned,
        description=description,
        secret_encrypted=secret_encrypt(secret),
        created_by=actor,
    )
    audit_log_record(
        action="webhook.create", actor=actor, obj=endpoint, workspace=workspace,
        after=_state(endpoint),
    )  # fmt: skip
    return endpoint, secret


@transaction.atomic
def endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    actor: User,
    url: str | None = None,
    events: Sequence[str] | None = None,
    description: str | None = None,
) -> WebhookEndpoint:
    """Change the URL, the subscribed types or the description (None leaves a value)."""
    require_admin(workspace=endpoint.workspace, user=actor)
    before = _state(endpoint)
    if url is not None:
        endpoint.url = url_clean(url)
    if events is not None:
        endpoint.events = events_clean(events)
    if description is not None:
        endpoint.description = description_clean(description)
    endpoint.save(update_fields=["url", "events", "description"])
    if _state(endpoint) != before:
        audit_log_record(
            action="webhook.update", actor=actor, obj=endpoint, workspace=endpoint.workspace,
            before=before, after=_state(endpoint),
        )  # fmt: skip
    return endpoint


@transaction.atomic
def endpoint_delete(*, endpoint: WebhookEndpoint, actor: User) -> None:
    """Delete the endpoint and its delivery log."""
    require_admin(workspace=endpoint.workspace, user=actor)
    audit_log_record(
        action="webhook.delete", actor=actor, obj=endpoint, workspace=endpoint.workspace,
        before=_state(endpoint),
    )  # fmt: skip
    endpoint.delete()


def endpoint_secret(*, endpoint: WebhookEndpoint, actor: User) -> str:
    """The signing secret in clear, for owners and admins."""
    require_admin(workspace=endpoint.workspace, user=actor)
    return secret_decrypt(endpoint.secret_encrypted)


@transaction.atomic
def endpoint_secret_rotate(*, endpoint: WebhookEndpoint, actor: User) -> str:
    """A new signing secret; the old one stops signing at once."""
    require_admin(workspace=endpoint.workspace, user=actor)
    secret = secret_new()
    endpoint.secret_encrypted = secret_encrypt(secret)
    endpoint.save(update_fields=["secret_encrypted"])
    audit_log_record(
        action="webhook.secret_rotate", actor=actor, obj=endpoint, workspace=endpoint.workspace
    )
    return secret


@transaction.atomic
def endpoint_enable(*, endpoint: WebhookEndpoint, actor: User) -> WebhookEndpoint:
    """Turn a disabled endpoint back on; its failure count starts again from zero."""
    require_admin(workspace=endpoint.workspace, user=actor)
    if endpoint.active:
        return endpoint
    endpoint.active = True
    endpoint.disabled_reason = ""
    endpoint.disabled_at = None
    endpoint.consecutive_failures = 0
    endpoint.save(
        update_fields=["active", "disabled_reason", "disabled_at", "consecutive_failures"]
    )
    audit_log_record(
        action="webhook.enable", actor=actor, obj=endpoint, workspace=endpoint.workspace
    )
    return endpoint


@transaction.atomic
def endpoint_disable(
    *, endpoint: WebhookEndpoint, actor: User | None, reason: str
) -> WebhookEndpoint:
    """Stop sending to the endpoint; outstanding deliveries are given up. When the platform does
    it (actor=None, after repeated failure) the owners are emailed."""
    if actor is not None:
        require_admin(workspace=endpoint.workspace, user=actor)
    changed = WebhookEndpoint.objects.filter(pk=endpoint.pk, active=True).update(
        active=False, disabled_reason=reason[:300], disabled_at=timezone.now()
    )
    endpoint.refresh_from_db()
    if not changed:
        return endpoint
    WebhookDelivery.objects.filter(
        endpoint=endpoint, state__in=[DeliveryState.PENDING, DeliveryState.FAILED]
    ).update(state=DeliveryState.GAVE_UP, last_error="The endpoint was disabled.", claimed_at=None)
    audit_log_record(
        action="webhook.disable", actor=actor, obj=endpoint, workspace=endpoint.workspace,
        reason=reason,
    )  # fmt: skip
    if actor is None:
        workspace_owners_email(
            workspace=endpoint.workspace,
            subject="A webhook endpoint was disabled",
            body=(
                f"We stopped sending events to {endpoint.url}:\n\n{reason}\n\n"
                "Fix the receiver, then turn the endpoint back on from the Webhooks page "
                f"of the workspace {endpoint.workspace.name}. Events that happened while it "
                "was disabled are not sent."
            ),
        )
    return endpoint
