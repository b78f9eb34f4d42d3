"""Celery adapters for billing."""

from celery import shared_task
from django.utils import timezone

from billing.services.credits import credits_grant_all


@shared_task
def credits_grant_daily() -> int:
    """Today's credits for every workspace (idempotent per day, so it runs hourly)."""
    return credits_grant_all(day=timezone.now().date())
