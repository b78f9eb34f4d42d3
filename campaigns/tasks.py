"""Celery adapters for campaigns."""

from dataclasses import asdict
from typing import Any

from celery import shared_task

from campaigns.services.dispatch import campaigns_dispatch
from campaigns.services.imports import imports_tidy, lead_import_run
from campaigns.services.suppressions import suppression_import_run


@shared_task
def campaigns_dispatch_tick() -> dict[str, Any]:
    """Send the campaign steps whose time has come (safe to run twice: rows are claimed)."""
    return asdict(campaigns_dispatch())


@shared_task
def lead_import(import_id: int) -> None:
    """Run one lead CSV import (safe to run twice: the import row is claimed first)."""
    lead_import_run(import_id=import_id)


@shared_task
def suppression_import(import_id: int) -> None:
    """Run one suppression CSV import (safe to run twice: the import row is claimed first)."""
    suppression_import_run(import_id=import_id)


@shared_task
def imports_tidy_tick() -> dict[str, int]:
    """Queue again the imports whose task was lost; fail the ones whose worker died."""
    return imports_tidy()
