"""The one entry point for events the product itself observes (opens, clicks, replies, ...)."""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import ApplicationError
from reputation.core.metrics import KIND_COUNTER, domain_counters_add, mailbox_counters_add
from reputation.core.scores import scores_recompute
from reputation.models import Event, EventKind
from sending.models import (
    DomainStatus,
    Mailbox,
    Message,
    MessageKind,
    SendingDomain,
    Suppression,
)
from webhooks.services.deliveries import webhook_emit_for_event

RECORDABLE = {
    EventKind.OPENED,
    EventKind.CLICKED,
    EventKind.REPLIED,
    EventKind.UNSUBSCRIBED,
    EventKind.RESCUED,
    EventKind.LANDED_IN_SPAM,
    EventKind.COMPLAINT,
    EventKind.DELIVERED,
    EventKind.SENT,
}
# Bounces come from the MTA, or from a delivery report found in the sender's own mailbox: the
# latter only for a message the platform sent (`outbound` given).
RECORDABLE_FOR_A_MESSAGE = {EventKind.BOUNCE_HARD, EventKind.BOUNCE_SOFT}


@transaction.atomic
def event_record(
    *,
    domain: SendingDomain,
    kind: str,
    source_key: str,
    mailbox: Mailbox | None = None,
    recipient: str = "",
    message_id: str = "",
    message_kind: str = "",
    occurred_at: datetime | None = None,
    detail: str = "",
    rescore: bool = True,
    outbound: Message | None = None,
) -> Event | None:
    """Record one event once (idempotent on `source_key`); counts it and rescores the domain.

    Opens count once per message (unique opens). Returns None for a replay. Bulk callers pass
    rescore=False and rescore once at the end. `outbound`: the sent message it is about (what
    campaign numbers and bounce protection read)."""
    if kind not in RECORDABLE and not (outbound is not None and kind in RECORDABLE_FOR_A_MESSAGE):
        raise ApplicationError(f"{kind} events come from the MTA, not from here.")
    if mailbox is not None and mailbox.domain_id != domain.pk:
        raise ApplicationError("The mailbox does not belong to this domain.")
    occurred_at = occurred_at or timezone.now()
    first_open = kind != EventKind.OPENED or not (
        message_id
        and Event.objects.filter(
            domain=domain, kind=EventKind.OPENED, message_id=message_id
        ).exists()
    )
    try:
        with transaction.atomic():
            event = Event.objects.create(
                domain=domain,
                mailbox=mailbox,
                kind=kind,
                recipient=recipient.lower()[:320],
                message_id=message_id[:64],
                message_kind=message_kind[:16],
                occurred_at=occurred_at,
                source_key=source_key[:80],
                detail=detail[:500],
                outbound=outbound,
            )
    except IntegrityError:
        return None
    counter = KIND_COUNTER.get(kind)
    if counter and first_open:
        day = occurred_at.date()
        counts = Counter({counter: 1})
        domain_counters_add({(domain.pk, day): counts})
        if mailbox is not None:
            mailbox_counters_add({(mailbox.pk, day): counts})
    if kind in (EventKind.UNSUBSCRIBED, EventKind.COMPLAINT) and recipient:
        reason = "unsubscribe" if kind == EventKind.UNSUBSCRIBED else "complaint"
        Suppression.objects.get_or_create(
            workspace_id=domain.workspace_id,
            address=recipient.lower(),
            defaults={"reason": reason, "source": "event"},
        )
    if rescore:
        scores_recompute(domain_ids=[domain.pk])
    if first_open and message_kind != MessageKind.WARMUP:
        # After commit, and never able to undo or fail the event (warm-up traffic is internal).
        transaction.on_commit(lambda: webhook_emit_for_event(event=event, domain=domain))
    return event


@dataclass(frozen=True)
class ProductEvent:
    """One event as another process reports it: its domain by public id."""

    domain: str
    kind: str
    source_key: str
    recipient: str = ""
    message_id: str = ""
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class EventsRecorded:
    received: int
    recorded: int


@transaction.atomic
def events_record(*, events: Sequence[ProductEvent]) -> EventsRecorded:
    """Record a batch of product events, each once, and rescore every domain it touches once.

    The rescoring runs here, in the process that serves the pages, so its pushes reach them."""
    wanted = {event.domain for event in events}
    domains = {
        domain.public_id: domain
        for domain in SendingDomain.objects.filter(public_id__in=wanted).exclude(
            status=DomainStatus.RETIRED
        )
    }
    unknown = sorted(wanted - domains.keys())
    if unknown:
        raise ApplicationError(
            f"No sending domain {unknown[0]}.",
            code="unknown_domain",
            fields={"events": [f"No sending domain {public_id}." for public_id in unknown]},
        )
    recorded = 0
    for event in events:
        if event_record(
            domain=domains[event.domain],
            kind=event.kind,
            source_key=event.source_key,
            recipient=event.recipient,
            message_id=event.message_id,
            occurred_at=event.occurred_at,
            rescore=False,
        ):
            recorded += 1
    scores_recompute(domain_ids=sorted(domain.pk for domain in domains.values()))
    return EventsRecorded(received=len(events), recorded=recorded)
