"""Celery adapters for sending domains."""

import logging

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError

from sending.models import SendingDomain
from sending.services.dkim import dkim_keys_retire_due
from sending.services.domains import domain_claims_expire, domains_release_due
from sending.services.mailbox_import import mailbox_import_run as mailbox_import_service
from sending.services.mailbox_import import mailbox_imports_tidy
from sending.services.outbound import (
    messages_due_claim_ids,
    messages_hand_over,
    messages_reconcile,
)
from sending.services.verification import domain_verify, domains_recheck_claim

logger = logging.getLogger(__name__)


@shared_task
def domains_tick() -> dict[str, int]:
    """Fan out due re-checks; end cool-downs, retire replaced DKIM keys, free stale claims."""
    claimed = domains_recheck_claim()
    for domain_id in claimed:
        domain_recheck.delay(domain_id)
    return {
        "rechecks": len(claimed),
        "released": domains_release_due(),
        "dkim_retired": dkim_keys_retire_due(),
        "claims_expired": domain_claims_expire(),
        "mailbox_imports": sum(mailbox_imports_tidy().values()),
    }


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=3)
def domain_recheck(domain_id: int) -> bool:
    domain = SendingDomain.objects.filter(pk=domain_id).first()
    if domain is None or domain.status == "retired":
        return False
    return domain_verify(domain=domain).verified


@shared_task
def messages_send(message_ids: list[int]) -> dict[str, int]:
    """Hand these messages over (those still due). A send's failure is booked on its message;
    should the database go away mid-run, the claimed messages are reconciled by the tick."""
    try:
        summary = messages_hand_over(message_ids=message_ids)
    except DatabaseError:
        logger.exception("hand-over interrupted; the outbound tick reconciles it")
        return {"sent": 0, "retried": 0, "failed": 0}
    return {"sent": summary.sent, "retried": summary.retried, "failed": summary.failed}


@shared_task
def outbound_tick() -> dict[str, int]:
    """Settle interrupted hand-overs, then fan out the messages whose (re)try time has come."""
    counts = messages_reconcile()
    due = messages_due_claim_ids()
    for start in range(0, len(due), settings.OUTBOUND_BATCH_SIZE):
        messages_send.delay(due[start : start + settings.OUTBOUND_BATCH_SIZE])
    return {**counts, "due": len(due)}


# Each row waits at most a few server timeouts; the default task time limit is too short for
# a full file of unreachable servers.
IMPORT_TIME_LIMIT = int(
    settings.MAILBOX_IMPORT_MAX_ROWS * (4 * settings.MAILBOX_CONNECT_TIMEOUT_SECONDS + 5)
)


@shared_task(time_limit=IMPORT_TIME_LIMIT)
def mailbox_import_run(import_id: int) -> None:
    """Create and test the mailboxes of one CSV import (claimed: a second run does nothing)."""
    mailbox_import_service(import_id=import_id)
