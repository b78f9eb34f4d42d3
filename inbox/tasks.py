"""Celery adapters for the inbox."""

from dataclasses import asdict
from typing import Any

from celery import shared_task

from inbox.services.poll import mailbox_replies_poll as mailbox_replies_poll_service
from inbox.services.poll import replies_poll_due


@shared_task
def replies_poll_tick() -> int:
    """Queue a reply poll for each mailbox that is due (safe to run twice: polls are claimed)."""
    return replies_poll_due()


@shared_task
def mailbox_replies_poll(mailbox_id: int) -> dict[str, Any]:
    """Read one mailbox's new replies (safe to run twice: the mailbox's poll row is claimed)."""
    return asdict(mailbox_replies_poll_service(mailbox_id=mailbox_id))
