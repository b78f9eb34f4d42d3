"""Celery adapters for accounts; the heartbeat proves the periodic schedule runs."""

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

from accounts import services

HEARTBEAT_KEY = "periodic:heartbeat"


@shared_task
def heartbeat() -> str:
    """Record that the periodic schedule is alive (shown in the operations console)."""
    now = timezone.now().isoformat()
    cache.set(HEARTBEAT_KEY, now, timeout=None)
    return now


@shared_task
def invitations_expire() -> int:
    return services.invitations_expire()
