"""Emission and delivery of webhook events: one delivery per event and endpoint, POSTed signed,
retried with exponential backoff for 24 hours; repeated failure disables the endpoint."""

import hashlib
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.crypto import secret_decrypt
from accounts.models import User, Workspace
from config.celery import task_enqueue
from config.errors import ApplicationError
from webhooks.models import (
    TEST_EVENT,
    DeliveryState,
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from webhooks.services.endpoints import endpoint_disable, private_hosts_allowed, require_admin
from webhooks.signing import headers_sign
from webhooks.transport import PostResult, post

logger = logging.getLogger(__name__)

DELIVER_TASK = "webhooks.tasks.webhook_deliver"
# Wait before attempt n+1 after n failed attempts; the last step repeats.
BACKOFF = (
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=4),
    timedelta(hours=8),
)
# No attempt is made later than this after the first one: the delivery is given up.
RETRY_WINDOW = timedelta(hours=24)
# This many deliveries given up in a row (no success between) disable the endpoint.
DISABLE_AFTER_GAVE_UP = 5
# A worker that died mid-POST leaves its claim; the tick takes it over after this.
CLAIM_TTL = timedelta(minutes=5)
DEFAULT_TIMEOUT_SECONDS = 10.0
OPEN = (DeliveryState.PENDING, DeliveryState.FAILED)


def backoff_delay(failed_attempts: int) -> timedelta:
    """The wait after `failed_attempts` failures (1 -> 30 s, 2 -> 2 min, ... then 8 h)."""
    return BACKOFF[min(max(failed_attempts, 1), len(BACKOFF)) - 1]


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    return result


def _enqueue_on_commit(ids: list[int]) -> None:
    def enqueue() -> None:
        for pk in ids:
            try:
                task_enqueue(DELIVER_TASK, pk)
            except Exception:  # the broker is down: the tick picks the delivery up
                logger.exception("webhook delivery %s not queued", pk)

    if ids:
        transaction.on_commit(enqueue)


def _payload(
    *, workspace: Workspace, event_type: str, data: dict[str, Any], at: datetime, event_id: str
) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": event_type,
        "timestamp": at.isoformat(),
        "workspace": workspace.public_id,
        "data": _jsonable(data),
    }


@transaction.atomic
def webhook_emit(
    *,
    workspace_id: int,
    event_type: str,
    data: dict[str, Any],
    occurred_at: datetime,
    event_id: str,
) -> list[WebhookDelivery]:
    """Create a delivery for each active endpoint subscribed to the type; queued on commit.

    Idempotent on (endpoint, event_id): emitting the same event again creates nothing."""
    if event_type not in EventType.values:
        raise ApplicationError(f"Unknown webhook event type {event_type}.", code="unknown_event")
    if not event_id or len(event_id) > 64:
        raise ApplicationError("A webhook event needs an id of at most 64 characters.")
    # Subscriptions are matched here, not in SQL: a workspace has a few endpoints, and JSON
    # containment is not available on every database (SQLite, the embedded profile).
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(
            workspace_id=workspace_id, active=True
        ).select_related("workspace")
        if not endpoint.events or event_type in endpoint.events
    ]
    if not endpoints:
        return []
    payload = _payload(
        workspace=endpoints[0].workspace,
        event_type=event_type,
        data=data,
        at=occurred_at,
        event_id=event_id,
    )
    existing = set(
        WebhookDelivery.objects.filter(event_id=event_id, endpoint__in=endpoints).values_list(
            "endpoint_id", flat=True
        )
    )
    created = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                endpoint=endpoint, event_id=event_id, event_type=event_type, payload=payload
            )
            for endpoint in endpoints
            if endpoint.pk not in existing
        ],
        ignore_conflicts=True,
    )
    rows = list(
        WebhookDelivery.objects.filter(
            event_id=event_id,
            endpoint_id__in=[d.endpoint_id for d in created],
            attempts=0,
            state=DeliveryState.PENDING,
        )
    )
    _enqueue_on_commit([row.pk for row in rows])
    return rows


@transaction.atomic
def webhook_test_send(*, endpoint: WebhookEndpoint, actor: User) -> WebhookDelivery:
    """Queue a `webhook.test` event to the endpoint (attempted once, never retried)."""
    require_admin(workspace=endpoint.workspace, user=actor)
    if not endpoint.active:
        raise ApplicationError(
            "This endpoint is disabled: turn it back on before sending a test event.",
            code="endpoint_disabled",
        )
    now = timezone.now()
    event_id = "evt_test_" + secrets.token_hex(8)
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        event_id=event_id,
        event_type=TEST_EVENT,
        payload=_payload(
            workspace=endpoint.workspace,
            event_type=TEST_EVENT,
            data={
                "message": "A test event from the Webhooks page.",
                "endpoint": endpoint.public_id,
            },
            at=now,
            event_id=event_id,
        ),
        next_attempt_at=now,
    )
    _enqueue_on_commit([delivery.pk])
    return delivery


def deliveries_due(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Ids of deliveries whose attempt is due (unclaimed, or a dead worker's stale claim)."""
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(
            state__in=OPEN, next_attempt_at__lte=now, endpoint__active=True
        )
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_TTL))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def _claim(delivery_id: int, now: datetime) -> bool:
    return (
        WebhookDelivery.objects.filter(
            pk=delivery_id, state__in=OPEN, next_attempt_at__lte=now, endpoint__active=True
        )
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_TTL))
        .update(claimed_at=now)
        == 1
    )


def delivery_attempt(*, delivery_id: int, now: datetime | None = None) -> WebhookDelivery | None:
    """POST one due delivery and record the answer. Safe twice: the delivery is claimed by a
    conditional update first, and no transaction is held open during the request."""
    now = now or timezone.now()
    if not _claim(delivery_id, now):
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint__workspace").get(pk=delivery_id)
    endpoint = delivery.endpoint
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    headers = headers_sign(
        secret=secret_decrypt(endpoint.secret_encrypted),
        msg_id=delivery.event_id,
        at=now,
        body=body,
    )
    result = post(
        url=endpoint.url,
        body=body,
        headers=headers,
        timeout=float(getattr(settings, "WEBHOOKS_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)),
        allow_private=private_hosts_allowed(),
        ca_file=getattr(settings, "WEBHOOKS_CA_FILE", ""),
    )
    return _attempt_record(delivery_id=delivery_id, claimed_at=now, result=result, now=now)


@transaction.atomic
def _attempt_record(
    *, delivery_id: int, claimed_at: datetime, result: PostResult, now: datetime
) -> WebhookDelivery | None:
    delivery = (
        WebhookDelivery.objects.select_for_update()
        .select_related("endpoint__workspace")
        .filter(pk=delivery_id, claimed_at=claimed_at, state__in=OPEN)
        .first()
    )
    if delivery is None:  # the claim was taken over (or the endpoint disabled) meanwhile
        return None
    number = delivery.attempts + 1
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=number,
        at=now,
        status_code=result.status_code,
        error=result.error[:500],
        response_excerpt=result.response_excerpt[:500],
        duration_ms=result.duration_ms,
    )
    delivery.attempts = number
    delivery.first_attempt_at = delivery.first_attempt_at or now
    delivery.last_status_code = result.status_code
    delivery.last_error = result.error[:500]
    delivery.response_excerpt = result.response_excerpt[:500]
    delivery.claimed_at = None
    endpoint = delivery.endpoint
    gave_up = False
    if result.ok:
        delivery.state = DeliveryState.SUCCEEDED
        delivery.delivered_at = now
        if delivery.event_type != TEST_EVENT and endpoint.consecutive_failures:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=0)
    else:
        next_at = now + backoff_delay(number)
        if delivery.event_type == TEST_EVENT or next_at > delivery.first_attempt_at + RETRY_WINDOW:
            delivery.state = DeliveryState.GAVE_UP
            gave_up = delivery.event_type != TEST_EVENT
        else:
            delivery.state = DeliveryState.FAILED
            delivery.next_attempt_at = next_at
    delivery.save()
    if gave_up:
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            consecutive_failures=F("consecutive_failures") + 1
        )
        endpoint.refresh_from_db()
        if endpoint.active and endpoint.consecutive_failures >= DISABLE_AFTER_GAVE_UP:
            endpoint_disable(
                endpoint=endpoint,
                actor=None,
                reason=(
                    f"{endpoint.consecutive_failures} deliveries in a row failed for 24 hours "
                    f"(last answer: {result.error or 'none'})."
                ),
            )
    return delivery


# Product events (reputation.models.Event kinds) that customers hear about, as webhook types.
EVENT_KIND_TYPES = {
    "sent": EventType.MESSAGE_SENT,
    "delivered": EventType.MESSAGE_DELIVERED,
    "opened": EventType.MESSAGE_OPENED,
    "clicked": EventType.MESSAGE_CLICKED,
    "replied": EventType.MESSAGE_REPLIED,
    "unsubscribed": EventType.LEAD_UNSUBSCRIBED,
    "bounce_hard": EventType.MESSAGE_BOUNCED,
    "bounce_soft": EventType.MESSAGE_BOUNCED,
}


def webhook_event_id(source_key: str) -> str:
    """A stable public id for a product event (its source key is internal)."""
    return "evt_" + hashlib.sha256(source_key.encode()).hexdigest()[:28]


def webhook_emit_for_event(*, event: Any, domain: Any) -> None:
    """Emit the webhook for a recorded product event (called on commit by `event_record`).

    Errors are logged and swallowed: a webhook must never cost the event itself."""
    event_type = EVENT_KIND_TYPES.get(event.kind)
    if event_type is None:
        return
    data: dict[str, Any] = {
        "domain": domain.name,
        "domain_id": domain.public_id,
        "recipient": event.recipient,
        "message_id": event.message_id,
        "mailbox": event.mailbox.address if event.mailbox_id and event.mailbox else "",
        "detail": event.detail,
    }
    if event.kind in ("bounce_hard", "bounce_soft"):
        data["bounce"] = "hard" if event.kind == "bounce_hard" else "soft"
    try:
        webhook_emit(
            workspace_id=domain.workspace_id,
            event_type=event_type,
            data=data,
            occurred_at=event.occurred_at,
            event_id=webhook_event_id(event.source_key),
        )
    except Exception:
        logger.exception("webhook for event %s not emitted", event.pk)


@dataclass(frozen=True)
class WebhookEvent:
    workspace_id: int
    event_type: str
    data: dict[str, Any]
    occurred_at: datetime
    event_id: str


def webhook_emit_many(*, events: Sequence[WebhookEvent]) -> int:
    """Emit a batch (e.g. a batch of the MTA's log records); one query first skips every
    workspace without an active endpoint. Returns the number of deliveries created."""
    if not events:
        return 0
    listening = set(
        WebhookEndpoint.objects.filter(
            workspace_id__in={e.workspace_id for e in events}, active=True
        ).values_list("workspace_id", flat=True)
    )
    created = 0
    for e in events:
        if e.workspace_id in listening:
            created += len(
                webhook_emit(
                    workspace_id=e.workspace_id,
                    event_type=e.event_type,
                    data=e.data,
                    occurred_at=e.occurred_at,
                    event_id=e.event_id,
                )
            )
    return created
