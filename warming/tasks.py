"""Celery adapters for warming."""

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from warming.services import warming_day_save
from warming.services.agent import warming_engage


@shared_task
def warming_tick() -> dict[str, int]:
    """Plan today (if a worker missed midnight) and tomorrow, each once."""
    today = timezone.now().date()
    planned = {}
    for day in (today, today + timedelta(days=1)):
        marker = warming_day_save(day=day)
        planned[day.isoformat()] = marker.sends if marker else -1
    return planned


@shared_task
def warming_engage_tick() -> dict[str, int]:
    """The engagement agent's pass over the warm-up messages whose time has come."""
    return warming_engage().as_dict()
