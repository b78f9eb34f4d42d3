"""Celery adapters for campaigns."""

from dataclasses import asdict
from typing import Any

from celery import shared_task

from campaigns.services.dispatch import campaigns_dispatch


@shared_task
def campaigns_dispatch_tick() -> dict[str, Any]:
    """Send the campaign steps whose time has come (safe to run twice: rows are claimed)."""
    return asdict(campaigns_dispatch())
