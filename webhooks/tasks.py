"""Celery adapters for outgoing webhooks."""

from typing import Any

from celery import shared_task
from django.utils.dateparse import parse_datetime

from config.celery import task_enqueue
from webhooks.services.deliveries import (
    DELIVER_TASK,
    deliveries_due,
    delivery_attempt,
    webhook_emit,
)


@shared_task
def webhook_deliver(delivery_id: int) -> str:
    """Attempt one delivery if it is due (safe to run twice: the delivery is claimed first)."""
    delivery = delivery_attempt(delivery_id=delivery_id)
    return "skipped" if delivery is None else delivery.state


@shared_task
def webhooks_deliver_tick() -> int:
    """Queue every delivery whose attempt is due (retries, and any whose task was lost)."""
    ids = deliveries_due()
    for pk in ids:
        task_enqueue(DELIVER_TASK, pk)
    return len(ids)


@shared_task
def webhook_emit_event(
    workspace_id: int, event_type: str, data: dict[str, Any], occurred_at: str, event_id: str
) -> int:
    """Emit an event for code below the webhooks layer (it queues this task on commit)."""
    at = parse_datetime(occurred_at)
    if at is None:
        raise ValueError(f"Not an ISO 8601 time: {occurred_at}")
    return len(
        webhook_emit(
            workspace_id=workspace_id,
            event_type=event_type,
            data=data,
            occurred_at=at,
            event_id=event_id,
        )
    )
