"""Turning stored records into events, counters, suppressions and fresh scores, in batches.

A batch is processed set-based (a handful of statements for thousands of records) inside a
savepoint. Should a record make it fail, the batch is split in halves and each half retried in
its own savepoint, down to the single record, which is set aside as a dead letter with its
error: one bad record costs a few extra statements, never the batch, and is never claimed again.

Two things are judged against what earlier batches stored, and are serialised between workers
with advisory locks: a complaint counts once per message (a per-domain lock, shared with the
soft-bounce streaks), and a Reception our MTA took back (it could not queue the message) counts
as never logged, whichever of its two records comes first (a lock taken in one mode per batch).
"""

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import NamedTuple

import orjson
import psycopg
from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Min, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from reputation.core.metrics import KIND_COUNTER, domain_counters_add, mailbox_counters_add
from reputation.core.scores import scores_recompute
from reputation.mapping import EventKind, MappedEvent, map_record
from reputation.models import (
    DomainDailyMetrics,
    Event,
    MailboxDailyMetrics,
    PendingRecord,
    RawRecord,
    SoftBounceStreak,
    UndoneReception,
    UnmatchedReport,
)
from reputation.services.actions import actions_evaluate
from reputation.services.dead_letters import dead_letters_record
from sending.models import DomainStatus, Mailbox, Message, MessageState, SendingDomain, Suppression
from webhooks.services.deliveries import (
    EVENT_KIND_TYPES,
    WebhookEvent,
    webhook_emit_many,
    webhook_event_id,
)

logger = logging.getLogger(__name__)

SOFT_BOUNCES_TO_HARD = 5
# Advisory lock namespace, one lock per sending domain: its soft-bounce streaks and its counted
# complaints (one per message) are judged by one worker at a time.
DOMAIN_LOCK = 4201
# One advisory lock: a batch that takes Receptions back holds it exclusively, a batch that
# processes Receptions shared (see `_receptions_lock`).
RECEPTION_LOCK = (4202, 0)
STREAK_KINDS = (EventKind.BOUNCE_SOFT, EventKind.DELIVERED, EventKind.BOUNCE_HARD)


@dataclass
class BatchOutcome:
    """What one batch changed; the score and action steps work from it."""

    records: int = 0
    events: int = 0
    domains: set[int] = field(default_factory=set)
    mailboxes: set[int] = field(default_factory=set)
    spam_blocks: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    warmup_complaints: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))


class _Row(NamedTuple):  # a tuple: tens of thousands are made per batch
    raw_id: int
    key: str
    event: MappedEvent
    domain_id: int
    workspace_id: int
    mailbox_id: int | None
    outbound_id: int | None = None  # the platform's Message this record is about


Mapped = list[tuple[int, str, MappedEvent]]  # (raw record id, source key, event)


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


# Reports anyone on the internet can mail us (an ARF complaint to the feedback address, a
# delivery status notification to a return path): they count only when they match a message the
# platform sent for the domain they name (SPEC 3.4a). Everything else comes from our own MTA
# through the authenticated hook, about mail it received from us.
REPORT_TYPES = frozenset({"Feedback", "OOB"})
FINAL_FAILURE_TYPES = frozenset({"Bounce", "Expiration", "OOB"})  # the message is given up
# How far back a report may point: complaints come days or weeks later; a relay gives up on a
# message within days (five is the usual queue lifetime) and then sends its notification.
COMPLAINT_MATCH_WINDOW = timedelta(days=30)
BOUNCE_MATCH_WINDOW = timedelta(days=7)
MATCH_CLOCK_SLACK = timedelta(minutes=10)  # a report's clock may run a little behind ours


class _Outbound(NamedTuple):
    """A `Message` row, as linking needs it."""

    pk: int
    message_id: str
    mta_id: str
    tenant: str  # its domain's public id
    domain_id: int
    workspace_id: int
    mailbox_id: int | None
    kind: str
    sender: str
    recipient: str
    sent_at: float | None  # handed over (or claimed for hand-over), unix seconds


class _Sent(NamedTuple):
    """A message our MTA received from the platform (a Reception record), as reports match it."""

    at: float
    mailbox_id: int | None
    message_kind: str
    outbound_id: int | None


class _Unmatched(NamedTuple):
    raw_id: int
    key: str
    event: MappedEvent
    domain_id: int | None
    reason: str


@dataclass
class _Resolved:
    rows: list[_Row]
    unmatched: list[_Unmatched]


_OUTBOUND_FIELDS = (
    "pk",
    "message_id",
    "mta_id",
    "domain__public_id",
    "domain_id",
    "workspace_id",
    "mailbox_id",
    "kind",
    "sender",
    "recipient",
    "handed_over_at",
    "claimed_at",
)


def _outbound(values: tuple) -> _Outbound:
    (pk, message_id, mta_id, tenant, domain_id, workspace_id, mailbox_id, kind, sender, recipient,
     handed_over_at, claimed_at) = values  # fmt: skip
    sent_at = handed_over_at or claimed_at
    return _Outbound(
        pk,
        message_id,
        mta_id,
        tenant,
        domain_id,
        workspace_id,
        mailbox_id,
        kind,
        sender.lower(),
        recipient.lower(),
        sent_at.timestamp() if sent_at else None,
    )


def _resolve(mapped: Mapped) -> _Resolved:
    """Attach each event to its sending domain, mailbox and outbound message (a few queries for
    the whole batch); drop unknown tenants; set aside reports that match nothing we sent."""
    by_message_id, by_mta_id = _outbound_find(mapped)
    linked = {**by_mta_id, **by_message_id}
    # A report that names no tenant names a domain through its original sender (an out-of-band
    # bounce's return path is the mailbox that sent).
    sender_domains = {
        e.mailbox.rpartition("@")[2]
        for _, _, e in mapped
        if e.record_type in REPORT_TYPES and not e.tenant and "@" in e.mailbox
    }
    tenants = {e.tenant for _, _, e in mapped if e.tenant}
    domains: dict[str, tuple[int, int]] = {}  # public id -> (pk, workspace id)
    domain_names: dict[str, int] = {}  # name -> pk
    workspaces: dict[int, int] = {}  # domain pk -> workspace id
    if tenants or sender_domains or linked:
        for public_id, pk, workspace_id, name in (
            SendingDomain.objects.filter(
                Q(public_id__in=tenants)
                | Q(name__in=sender_domains)
                | Q(pk__in={o.domain_id for o in linked.values()})
            )
            .exclude(status=DomainStatus.RETIRED)
            .values_list("public_id", "pk", "workspace_id", "name")
        ):
            domains[public_id] = (pk, workspace_id)
            domain_names[name] = pk
            workspaces[pk] = workspace_id
    mailboxes = _mailboxes_find(mapped, domains)

    rows: list[_Row] = []
    reports: list[tuple[int, str, MappedEvent]] = []
    for raw_id, key, e in mapped:
        if e.record_type in REPORT_TYPES:
            reports.append((raw_id, key, e))
            continue
        # Our MTA's own record: trusted as it comes. The message it names is linked when it
        # belongs to the tenant the record names.
        outbound = by_message_id.get(e.rfc_message_id) or by_mta_id.get(e.message_id)
        if outbound is not None and e.tenant and outbound.tenant != e.tenant:
            outbound = None
        tenant = e.tenant or (outbound.tenant if outbound else "")
        if tenant not in domains:
            continue
        domain_id, workspace_id = domains[tenant]
        mailbox_id = mailboxes.get((domain_id, _local_part(e.mailbox)))
        if mailbox_id is None and outbound is not None:
            mailbox_id = outbound.mailbox_id
        outbound_id = outbound.pk if outbound is not None else None
        rows.append(_Row(raw_id, key, e, domain_id, workspace_id, mailbox_id, outbound_id))
    if not reports:
        return _Resolved(rows, [])
    return _reports_match(reports, rows, by_message_id, domains, domain_names, workspaces)


def _local_part(address: str) -> str:
    return address.split("@", 1)[0] if "@" in address else ""


def _outbound_find(mapped: Mapped) -> tuple[dict[str, _Outbound], dict[str, _Outbound]]:
    """The platform's messages the batch names: by Message-ID, then (for our MTA's records that
    name none we know) by the MTA's spool id."""
    message_ids = {e.rfc_message_id for _, _, e in mapped if e.rfc_message_id}
    by_message_id = {o.message_id: o for o in _outbound_load("message_id", message_ids)}
    spool_ids = {
        e.message_id
        for _, _, e in mapped
        if e.message_id
        and e.record_type not in REPORT_TYPES
        and e.rfc_message_id not in by_message_id
    }
    by_mta_id = {o.mta_id: o for o in _outbound_load("mta_id", spool_ids)}
    return by_message_id, by_mta_id


def _outbound_load(column: str, values: set[str]) -> list[_Outbound]:
    """Messages whose `column` (message_id or mta_id) is one of `values`."""
    if not values:
        return []
    if connection.vendor != POSTGRES:
        found = Message.objects.filter(**{f"{column}__in": values})
        if column == "mta_id":
            found = found.exclude(mta_id="")
        return [_outbound(row) for row in found.values_list(*_OUTBOUND_FIELDS)]
    # One array parameter rather than thousands of placeholders (a batch names thousands).
    message, domain = Message._meta.db_table, SendingDomain._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT m.id, m.message_id, m.mta_id, d.public_id, m.domain_id, m.workspace_id, "
            "m.mailbox_id, m.kind, m.sender, m.recipient, m.handed_over_at, m.claimed_at "
            f"FROM {message} m JOIN {domain} d ON d.id = m.domain_id "
            # `mta_id <> ''` lets the partial index on filled-in spool ids serve the lookup.
            f"WHERE m.{column} = ANY(%s)" + (" AND m.mta_id <> ''" if column == "mta_id" else ""),
            [sorted(values)],
        )
        return [_outbound(row) for row in cursor.fetchall()]


def _mailboxes_find(
    mapped: Mapped, domains: dict[str, tuple[int, int]]
) -> dict[tuple[int, str], int]:
    """(domain pk, local part) -> mailbox pk for the senders our MTA's records name (a report's
    mailbox is the one of the message it matches)."""
    locals_by_domain: dict[int, set[str]] = defaultdict(set)
    for _, _, e in mapped:
        if e.tenant in domains and "@" in e.mailbox and e.record_type not in REPORT_TYPES:
            locals_by_domain[domains[e.tenant][0]].add(_local_part(e.mailbox))
    mailboxes = {}
    if locals_by_domain:
        for pk, domain_id, local_part in Mailbox.objects.filter(
            domain_id__in=list(locals_by_domain),
            local_part__in={lp for lps in locals_by_domain.values() for lp in lps},
        ).values_list("pk", "domain_id", "local_part"):
            mailboxes[(domain_id, local_part)] = pk
    return mailboxes


def _reports_match(
    reports: Mapped,
    rows: list[_Row],
    by_message_id: dict[str, _Outbound],
    domains: dict[str, tuple[int, int]],
    domain_names: dict[str, int],
    workspaces: dict[int, int],
) -> _Resolved:
    """Complaints and out-of-band bounces that match a message the platform sent for the domain
    they name become rows; the rest are set aside, with the reason, as unmatched reports.

    A report matches a `Message` by its Message-ID (the domain it names, if any, must be the
    message's), an out-of-band bounce also the latest message its return path (the mailbox) sent
    to the failed address, and either one a Reception record of our MTA for that domain and
    recipient. What the report says of the message (its kind, the recipient of a Message-ID
    match) is taken from what we sent, not from the report."""
    unmatched: list[_Unmatched] = []
    pending: list[tuple[int, str, MappedEvent, int | None]] = []  # (..., claimed domain pk)
    matched: list[_Row] = []
    seen: set[tuple[int, int]] = set()  # (raw record, message): one report, one complaint
    for raw_id, key, e in reports:
        outbound = by_message_id.get(e.rfc_message_id)
        if outbound is not None:
            if e.tenant and e.tenant != outbound.tenant:
                unmatched.append(
                    _Unmatched(
                        raw_id,
                        key,
                        e,
                        _claimed_domain(e, domains, domain_names),
                        "its Message-ID is a message of another sending domain",
                    )
                )
                continue
            if outbound.domain_id not in workspaces or (raw_id, outbound.pk) in seen:
                continue  # a retired domain's message, or this report's other recipient
            seen.add((raw_id, outbound.pk))
            matched.append(_outbound_row(raw_id, key, e, outbound, workspaces))
            continue
        domain_id = _claimed_domain(e, domains, domain_names)
        pending.append((raw_id, key, e, domain_id))

    by_return_path = _return_path_find(pending)
    receptions = _receptions_find(pending, rows)
    for raw_id, key, e, domain_id in pending:
        outbound = by_return_path.get(key)
        if outbound is not None and outbound.domain_id in workspaces:
            matched.append(_outbound_row(raw_id, key, e, outbound, workspaces))
            continue
        sent = _sent_before(receptions.get((domain_id, e.recipient), ()), e)
        if domain_id is not None and sent is not None:
            event = replace(e, message_kind=sent.message_kind)
            matched.append(
                _Row(
                    raw_id,
                    key,
                    event,
                    domain_id,
                    workspaces[domain_id],
                    sent.mailbox_id,
                    sent.outbound_id,
                )
            )
            continue
        unmatched.append(_Unmatched(raw_id, key, e, domain_id, _unmatched_reason(e, domain_id)))
    return _Resolved(rows + matched, unmatched)


def _outbound_row(
    raw_id: int, key: str, e: MappedEvent, outbound: _Outbound, workspaces: dict[int, int]
) -> _Row:
    # The message decides who received it and what kind it was; the report only points at it.
    event = replace(e, recipient=outbound.recipient, message_kind=outbound.kind)
    return _Row(
        raw_id,
        key,
        event,
        outbound.domain_id,
        workspaces[outbound.domain_id],
        outbound.mailbox_id,
        outbound.pk,
    )


def _claimed_domain(
    e: MappedEvent, domains: dict[str, tuple[int, int]], domain_names: dict[str, int]
) -> int | None:
    """The sending domain a report names: its tenant, or else its original sender's domain."""
    if e.tenant:
        found = domains.get(e.tenant)
        return found[0] if found else None
    return domain_names.get(e.mailbox.rpartition("@")[2]) if "@" in e.mailbox else None


def _window(e: MappedEvent) -> timedelta:
    return COMPLAINT_MATCH_WINDOW if e.record_type == "Feedback" else BOUNCE_MATCH_WINDOW


def _return_path_find(
    pending: list[tuple[int, str, MappedEvent, int | None]],
) -> dict[str, _Outbound]:
    """For out-of-band bounces: the latest message their return path (a mailbox of the domain)
    handed over to the failed address shortly before the bounce, by source key."""
    wanted = [
        (key, e, domain_id)
        for _, key, e, domain_id in pending
        if e.record_type == "OOB" and domain_id is not None and e.recipient and e.mailbox
    ]
    if not wanted:
        return {}
    times = [e.occurred_at for _, e, _ in wanted]
    earliest = _when(min(times)) - BOUNCE_MATCH_WINDOW
    latest = _when(max(times)) + MATCH_CLOCK_SLACK
    candidates: dict[tuple[int, str, str], list[_Outbound]] = defaultdict(list)
    for values in (
        Message.objects.filter(
            domain_id__in={d for _, _, d in wanted},
            recipient__in={e.recipient for _, e, _ in wanted},
            created_at__lte=latest,
        )
        .filter(
            Q(handed_over_at__range=(earliest, latest))
            | Q(handed_over_at__isnull=True, claimed_at__range=(earliest, latest))
        )
        .values_list(*_OUTBOUND_FIELDS)
    ):
        outbound = _outbound(values)
        candidates[(outbound.domain_id, outbound.sender, outbound.recipient)].append(outbound)
    found = {}
    slack = MATCH_CLOCK_SLACK.total_seconds()
    for key, e, domain_id in wanted:
        earliest_at = e.occurred_at - BOUNCE_MATCH_WINDOW.total_seconds()
        sent = [
            o
            for o in candidates.get((domain_id, e.mailbox, e.recipient), ())
            if o.sent_at is not None and earliest_at <= o.sent_at <= e.occurred_at + slack
        ]
        if sent:
            found[key] = max(sent, key=lambda o: (o.sent_at or 0.0, o.pk))
    return found


def _receptions_find(
    pending: list[tuple[int, str, MappedEvent, int | None]], rows: list[_Row]
) -> dict[tuple[int | None, str], list[_Sent]]:
    """Our MTA's Reception records (stored `sent` events, and this batch's) for the domains and
    recipients the reports name, within the reports' windows."""
    wanted = {(d, e.recipient) for _, _, e, d in pending if d is not None and e.recipient}
    if not wanted:
        return {}
    found: dict[tuple[int | None, str], list[_Sent]] = defaultdict(list)
    for row in rows:
        pair = (row.domain_id, row.event.recipient)
        if row.event.kind == EventKind.SENT and pair in wanted:
            found[pair].append(
                _Sent(
                    row.event.occurred_at, row.mailbox_id, row.event.message_kind, row.outbound_id
                )
            )
    times = [e.occurred_at for _, _, e, d in pending if d is not None and e.recipient]
    earliest = _when(min(times)) - COMPLAINT_MATCH_WINDOW
    latest = _when(max(times)) + MATCH_CLOCK_SLACK
    for domain_id, recipient, at, mailbox_id, message_kind, outbound_id in Event.objects.filter(
        kind=EventKind.SENT.value,
        domain_id__in={d for d, _ in wanted},
        recipient__in={r for _, r in wanted},
        occurred_at__range=(earliest, latest),
    ).values_list(
        "domain_id", "recipient", "occurred_at", "mailbox_id", "message_kind", "outbound_id"
    ):
        if (domain_id, recipient) in wanted:
            found[(domain_id, recipient)].append(
                _Sent(at.timestamp(), mailbox_id, message_kind, outbound_id)
            )
    return found


def _sent_before(sent: Iterable[_Sent], e: MappedEvent) -> _Sent | None:
    """The latest of these sends a report about `e` can be about."""
    earliest = e.occurred_at - _window(e).total_seconds()
    latest = e.occurred_at + MATCH_CLOCK_SLACK.total_seconds()
    return max((s for s in sent if earliest <= s.at <= latest), key=lambda s: s.at, default=None)


def _unmatched_reason(e: MappedEvent, domain_id: int | None) -> str:
    what = "complaint" if e.record_type == "Feedback" else "bounce"
    if domain_id is None:
        if e.tenant:
            return f"the {what} names a tenant that is no active sending domain here"
        return f"the {what} names no sending domain of ours (no tenant, unknown sender domain)"
    if not e.recipient:
        return f"the {what} names no recipient"
    days = _window(e).days
    if e.record_type == "OOB":
        return (
            f"no message of ours from {e.mailbox or 'this domain'} to this recipient was handed "
            f"over in the {days} days before"
        )
    unknown_id = " and its Message-ID is none of ours" if e.rfc_message_id else ""
    return f"this domain sent nothing to this recipient in the {days} days before{unknown_id}"


def _reports_defer(unmatched: list[_Unmatched]) -> set[int]:
    """Put back in the queue the unmatched reports that older records, still unprocessed (or
    being processed by another worker right now), might match; returns their record ids.

    Parallel workers take consecutive batches: a complaint in one may be about a Reception in
    the other, not committed yet. Claimed rows leave the queue only when their worker commits,
    so an older queued row is exactly an older record whose events are not visible yet. A whole
    record goes back, so none of its events is counted twice."""
    if not unmatched:
        return set()
    oldest = PendingRecord.objects.aggregate(oldest=Min("raw_record_id"))["oldest"]
    if oldest is None:
        return set()
    deferred = {u.raw_id for u in unmatched if u.raw_id > oldest}
    PendingRecord.objects.bulk_create(
        [PendingRecord(raw_record_id=raw_id) for raw_id in deferred], ignore_conflicts=True
    )
    return deferred


def _unmatched_store(unmatched: list[_Unmatched], now: datetime) -> None:
    """Keep unmatched reports for staff (idempotent on the event's source key)."""
    UnmatchedReport.objects.bulk_create(
        [
            UnmatchedReport(
                kind=UnmatchedReport.Kind.COMPLAINT
                if u.event.record_type == "Feedback"
                else UnmatchedReport.Kind.BOUNCE,
                tenant=u.event.tenant[:64],
                domain_id=u.domain_id,
                recipient=u.event.recipient[:320],
                sender=u.event.mailbox[:320],
                message_id=u.event.rfc_message_id[:255],
                reason=u.reason[:300],
                occurred_at=_when(u.event.occurred_at),
                raw_record_id=u.raw_id,
                source_key=u.key[:80],
                created_at=now,
            )
            for u in unmatched
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )


def _complaints_once(rows: list[_Row]) -> tuple[list[_Row], list[_Unmatched]]:
    """Count at most one complaint per message: whoever received one genuine message can mail
    any number of reports quoting it. Per outbound message; for a complaint matched only through
    a Reception (no `Message` row), per domain and recipient within the matching window. The
    rest become unmatched reports. Judged against the complaints stored (the caller holds the
    domains' locks, so another worker's are committed) and this batch's, earliest first.

    Returns the rows to count and the repeated complaints."""
    complaints = [
        r for r in rows if r.event.kind == EventKind.COMPLAINT and r.event.record_type == "Feedback"
    ]
    if not complaints:
        return rows, []
    messages = {r.outbound_id for r in complaints if r.outbound_id is not None}
    counted_messages: set[int] = set()
    if messages:
        counted_messages = set(
            Event.objects.filter(kind=EventKind.COMPLAINT.value, outbound_id__in=messages)
            .values_list("outbound_id", flat=True)
            .distinct()
        )
    unlinked = [r for r in complaints if r.outbound_id is None]
    counted_at: dict[tuple[int, str], list[float]] = defaultdict(list)
    window = COMPLAINT_MATCH_WINDOW.total_seconds()
    if unlinked:
        pairs = {(r.domain_id, r.event.recipient) for r in unlinked}
        times = [r.event.occurred_at for r in unlinked]
        for domain_id, recipient, stored_at in Event.objects.filter(
            kind=EventKind.COMPLAINT.value,
            outbound__isnull=True,
            domain_id__in={d for d, _ in pairs},
            recipient__in={r for _, r in pairs},
            occurred_at__range=(
                _when(min(times)) - COMPLAINT_MATCH_WINDOW,
                _when(max(times)) + COMPLAINT_MATCH_WINDOW,
            ),
        ).values_list("domain_id", "recipient", "occurred_at"):
            if (domain_id, recipient) in pairs:
                counted_at[(domain_id, recipient)].append(stored_at.timestamp())

    repeated: dict[str, str] = {}  # source key -> reason
    for row in sorted(complaints, key=lambda r: (r.event.occurred_at, r.raw_id, r.key)):
        if row.outbound_id is not None:
            if row.outbound_id in counted_messages:
                repeated[row.key] = "a complaint about this message was already counted"
            else:
                counted_messages.add(row.outbound_id)
            continue
        pair, at = (row.domain_id, row.event.recipient), row.event.occurred_at
        if any(abs(at - other) <= window for other in counted_at[pair]):
            repeated[row.key] = (
                "a complaint about this message was already counted (matched only through our "
                "MTA's Reception: one per recipient of this domain within "
                f"{COMPLAINT_MATCH_WINDOW.days} days)"
            )
        else:
            counted_at[pair].append(at)
    if not repeated:
        return rows, []
    return [r for r in rows if r.key not in repeated], [
        _Unmatched(r.raw_id, r.key, r.event, r.domain_id, repeated[r.key])
        for r in complaints
        if r.key in repeated
    ]


def _receptions_lock(groups: list[Mapped]) -> None:
    """Serialise taking Receptions back with processing them (PostgreSQL).

    KumoMTA logs a Reception and then, when it cannot queue the message, the Bounce that takes
    it back; parallel workers may hold the two in batches judged at the same time. A batch that
    takes a Reception back holds this lock exclusively, a batch with Receptions holds it shared:
    each then sees the other's work committed, whatever the order. Taken once per batch, in
    one mode, before any other lock and outside the savepoints (which would release it)."""
    if connection.vendor != POSTGRES:
        return
    kinds = {e.kind for group in groups for _, _, e in group}
    if EventKind.RECEPTION_UNDONE in kinds:
        function = "pg_advisory_xact_lock"  # rare: batches with Receptions wait for this one
    elif EventKind.SENT in kinds:
        function = "pg_advisory_xact_lock_shared"  # these never wait for each other
    else:
        return
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s, %s)", RECEPTION_LOCK)


def _receptions_undone(mapped: Mapped) -> set[str]:
    """Spool ids whose Reception was taken back: by this batch's markers, or by markers stored
    earlier for the Receptions in this batch (one query)."""
    undone = {
        e.message_id for _, _, e in mapped if e.kind == EventKind.RECEPTION_UNDONE and e.message_id
    }
    received = {e.message_id for _, _, e in mapped if e.kind == EventKind.SENT and e.message_id}
    received -= undone
    if not received:
        return undone
    if connection.vendor != POSTGRES:
        found = UndoneReception.objects.filter(spool_id__in=received).values_list(
            "spool_id", flat=True
        )
        return undone | set(found)
    with connection.cursor() as cursor:
        # One array parameter rather than thousands of placeholders.
        cursor.execute(
            f"SELECT spool_id FROM {UndoneReception._meta.db_table} WHERE spool_id = ANY(%s)",
            [sorted(received)],
        )
        return undone | {spool_id for (spool_id,) in cursor.fetchall()}


def _receptions_take_back(
    taken_back: Mapped, markers: list[_Row], now: datetime
) -> tuple[set[int], set[int]]:
    """Undo the Receptions KumoMTA took back (it could not queue the message and told the
    sender to try again, so the message was never sent): note the spool ids, so that a
    Reception processed later counts as never logged; delete the `sent` events an earlier batch
    stored for them and take them off the daily counters (domain and mailbox, the event's day);
    and clear a message's spool id when it is one of these (keeping its other Reception's, if
    any). Returns the domains and mailboxes whose counters changed."""
    first: dict[str, tuple[int, str, MappedEvent]] = {}
    for raw_id, key, e in sorted(taken_back, key=lambda m: (m[2].occurred_at, m[0])):
        if e.message_id:
            first.setdefault(e.message_id, (raw_id, key, e))
    if not first:
        return set(), set()
    domains = {r.event.message_id: r.domain_id for r in markers}
    UndoneReception.objects.bulk_create(
        [
            UndoneReception(
                spool_id=spool_id[:64],
                domain_id=domains.get(spool_id),
                recipient=e.recipient[:320],
                detail=e.response[:500],
                occurred_at=_when(e.occurred_at),
                raw_record_id=raw_id,
                created_at=now,
            )
            for spool_id, (raw_id, _, e) in first.items()
        ],
        ignore_conflicts=True,
    )

    # The Receptions' events: a Reception and its Bounce name the same tenant and recipients.
    wanted = {(r.domain_id, r.event.recipient, r.event.message_id) for r in markers}
    stored = []
    if wanted:
        columns = ("pk", "domain_id", "recipient", "message_id", "mailbox_id", "occurred_at")
        stored = [
            values
            for values in Event.objects.filter(
                kind=EventKind.SENT.value,
                domain_id__in={d for d, _, _ in wanted},
                recipient__in={r for _, r, _ in wanted},
                message_id__in={m for _, _, m in wanted},
            ).values_list(*columns, "message_kind")
            if values[1:4] in wanted
        ]
    domain_counts: dict[tuple[int, date], Counter] = defaultdict(Counter)
    mailbox_counts: dict[tuple[int, date], Counter] = defaultdict(Counter)
    for _, domain_id, _, _, mailbox_id, at, message_kind in stored:
        day = at.astimezone(UTC).date()  # the day `_count` counted it on
        targets = [domain_counts[(domain_id, day)]]
        if mailbox_id:
            targets.append(mailbox_counts[(mailbox_id, day)])
        for target in targets:
            target["sent"] += 1
            if message_kind == "warmup":
                target["warmup_sent"] += 1
    if stored:
        Event.objects.filter(pk__in=[values[0] for values in stored]).delete()
        _counters_take_back(DomainDailyMetrics, "domain_id", domain_counts)
        _counters_take_back(MailboxDailyMetrics, "mailbox_id", mailbox_counts)

    # The spool id is the sender's proof of a hand-over: it goes, unless another Reception of
    # the message (a retry that was queued) names one.
    spool_ids = set(first)
    queued = (
        Event.objects.filter(outbound_id=OuterRef("pk"), kind=EventKind.SENT.value)
        .exclude(message_id="")
        .exclude(message_id__in=spool_ids)
        .order_by("occurred_at", "id")
        .values("message_id")[:1]
    )
    # `mta_id <> ''` lets the partial index on filled-in spool ids serve the lookup.
    Message.objects.filter(mta_id__in=spool_ids).exclude(mta_id="").update(
        mta_id=Coalesce(Subquery(queued), Value(""))
    )
    return {d for d, _ in domain_counts}, {m for m, _ in mailbox_counts}


def _counters_take_back(model, owner: str, counts: dict[tuple[int, date], Counter]) -> None:
    """Subtract `counts` (sent, warmup_sent) from existing day rows, never below zero."""
    if not counts:
        return
    if connection.vendor != POSTGRES:
        for (owner_id, day), counter in counts.items():
            model.objects.filter(**{owner: owner_id}, day=day).update(
                sent=Greatest(F("sent") - counter["sent"], 0),
                warmup_sent=Greatest(F("warmup_sent") - counter["warmup_sent"], 0),
            )
        return
    table = model._meta.db_table
    keys = list(counts)
    with connection.cursor() as cursor:
        # Table and column names are constants; every value is a parameter.
        cursor.execute(
            f"UPDATE {table} AS t SET sent = GREATEST(t.sent - v.sent, 0), "
            "warmup_sent = GREATEST(t.warmup_sent - v.warmup_sent, 0) "
            "FROM unnest(%s::bigint[], %s::date[], %s::int[], %s::int[]) "
            "AS v(owner, day, sent, warmup_sent) "
            f"WHERE t.{owner} = v.owner AND t.day = v.day",
            [
                [owner_id for owner_id, _ in keys],
                [day for _, day in keys],
                [counts[k]["sent"] for k in keys],
                [counts[k]["warmup_sent"] for k in keys],
            ],
        )


def _outbound_advance(rows: list[_Row]) -> None:
    """Move the linked messages forward from what the records say, never back: Reception ->
    the spool id filled in, Delivery -> delivered, Bounce, Expiration or an
    out-of-band bounce -> bounced. Each step is one guarded statement, so a late or replayed
    record (or one the sender booked meanwhile) changes nothing it should not."""
    received: dict[int, tuple[datetime, str]] = {}
    delivered: dict[int, datetime] = {}
    bounced: dict[int, tuple[datetime, str]] = {}
    for row in rows:
        if row.outbound_id is None:
            continue
        e, pk = row.event, row.outbound_id
        at = _when(e.occurred_at)
        if e.record_type == "Reception":
            if pk not in received or at < received[pk][0]:
                received[pk] = (at, e.message_id)
        elif e.record_type == "Delivery":
            if pk not in delivered or at < delivered[pk]:
                delivered[pk] = at
        elif e.record_type in FINAL_FAILURE_TYPES and (pk not in bounced or at < bounced[pk][0]):
            bounced[pk] = (at, e.response)
    if not (received or delivered or bounced):
        return
    if connection.vendor != POSTGRES:
        _outbound_advance_orm(received, delivered, bounced)
        return
    table = Message._meta.db_table
    sending, handed_over = MessageState.SENDING.value, MessageState.HANDED_OVER.value
    with connection.cursor() as cursor:
        if received:
            # Only the spool id: the sender books the hand-over itself, and KumoMTA logs a
            # Reception before it may still drop the message at reception (a failed queue
            # insert, reported to the sender as a refused recipient, who retries it).
            cursor.execute(
                f"UPDATE {table} AS m SET mta_id = v.mta_id "
                "FROM unnest(%s::bigint[], %s::text[]) AS v(id, mta_id) "
                "WHERE m.id = v.id AND m.mta_id = '' AND v.mta_id <> ''",
                [list(received), [spool_id[:64] for _, spool_id in received.values()]],
            )
        if delivered:
            cursor.execute(
                f"UPDATE {table} AS m SET state = %s, "
                "finished_at = COALESCE(m.finished_at, v.at) "
                "FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, at) "
                "WHERE m.id = v.id AND m.state = ANY(%s)",
                [
                    MessageState.DELIVERED.value,
                    list(delivered),
                    list(delivered.values()),
                    [sending, handed_over],
                ],
            )
        if bounced:
            cursor.execute(
                f"UPDATE {table} AS m SET state = %s, finished_at = v.at, last_error = v.error "
                "FROM unnest(%s::bigint[], %s::timestamptz[], %s::text[]) AS v(id, at, error) "
                "WHERE m.id = v.id AND m.state = ANY(%s)",
                [
                    MessageState.BOUNCED.value,
                    list(bounced),
                    [at for at, _ in bounced.values()],
                    [error for _, error in bounced.values()],
                    [sending, handed_over, MessageState.DELIVERED.value],
                ],
            )


def _outbound_advance_orm(
    received: dict[int, tuple[datetime, str]],
    delivered: dict[int, datetime],
    bounced: dict[int, tuple[datetime, str]],
) -> None:
    """The same steps for the embedded profile's SQLite (one process: no concurrent booking)."""
    sending, handed_over = MessageState.SENDING, MessageState.HANDED_OVER
    messages = list(Message.objects.filter(pk__in={*received, *delivered, *bounced}))
    for message in messages:
        if message.pk in received:
            message.mta_id = message.mta_id or received[message.pk][1][:64]
        if message.pk in delivered and message.state in (sending, handed_over):
            message.state = MessageState.DELIVERED
            message.finished_at = message.finished_at or delivered[message.pk]
        if message.pk in bounced and message.state in (
            sending,
            handed_over,
            MessageState.DELIVERED,
        ):
            message.state = MessageState.BOUNCED
            message.finished_at, message.last_error = bounced[message.pk]
    Message.objects.bulk_update(
        messages, ["mta_id", "state", "handed_over_at", "finished_at", "last_error"]
    )


def _soft_bounce_streaks(rows: list[_Row], now: datetime) -> tuple[list[_Row], set[str]]:
    """Count consecutive soft bounces per recipient; the fifth becomes a hard bounce.

    Returns the derived hard bounces, and the keys of real hard bounces to drop because they
    are the same message's later expiry (already counted once). The caller holds the domains'
    locks (`_domains_lock`): parallel workers must not interleave one domain's streaks (the last
    writer would win)."""
    relevant = [r for r in rows if _in_streak(r)]
    if not relevant:
        return [], set()
    state = _streaks_load({(r.domain_id, r.event.recipient) for r in relevant})
    original = {pair: tuple(value) for pair, value in state.items()}
    derived, dropped = [], set()
    for row in sorted(relevant, key=lambda r: r.event.occurred_at):
        pair = (row.domain_id, row.event.recipient)
        if row.event.kind != EventKind.BOUNCE_SOFT and pair not in state:
            continue  # no streak to reset: the common case, kept out of the database
        streak = state.setdefault(pair, [0, ""])
        if row.event.kind == EventKind.BOUNCE_HARD:
            if row.event.message_id and row.event.message_id == streak[1]:
                dropped.add(row.key)
            streak[0] = 0
        elif row.event.kind == EventKind.DELIVERED:
            streak[0] = 0
        elif row.event.message_id and row.event.message_id == streak[1]:
            continue  # this message already counted its hard bounce; its retries add nothing
        else:
            streak[0] += 1
            if streak[0] >= SOFT_BOUNCES_TO_HARD:
                streak[0], streak[1] = 0, row.event.message_id
                hard = replace(
                    row.event,
                    kind=EventKind.BOUNCE_HARD,
                    classification="SoftBounceLimit",
                    response=f"{SOFT_BOUNCES_TO_HARD} soft bounces in a row",
                )
                derived.append(row._replace(key=row.key + ":hard", event=hard))
    changed = [
        SoftBounceStreak(
            domain_id=d, recipient=r, count=n, converted_message_id=c[:64], updated_at=now
        )
        for (d, r), (n, c) in state.items()
        if original.get((d, r)) != (n, c)
    ]
    SoftBounceStreak.objects.bulk_create(
        changed,
        update_conflicts=True,
        unique_fields=["domain", "recipient"],
        update_fields=["count", "converted_message_id", "updated_at"],
    )
    return derived, dropped


def _in_streak(row: _Row) -> bool:
    return bool(row.event.recipient) and row.event.kind in STREAK_KINDS


def _domains_lock(domain_ids: set[int]) -> None:
    """Take the per-domain advisory locks (held until the transaction ends), in one statement
    and in ascending order, so two workers cannot wait on each other."""
    if not domain_ids or connection.vendor != POSTGRES:
        return
    with connection.cursor() as cursor:
        # unnest yields the sorted array in order, and each row's lock is taken as it comes.
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(%s, d)) FROM unnest(%s::int[]) AS d",
            [DOMAIN_LOCK, sorted(domain_ids)],
        )


def _streaks_load(pairs: set[tuple[int, str]]) -> dict[tuple[int, str], list]:
    """Existing streaks for these (domain, recipient) pairs, as [count, converted message]."""
    domains = sorted({d for d, _ in pairs})
    recipients = sorted({r for _, r in pairs})
    if connection.vendor == POSTGRES:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT domain_id, recipient, count, converted_message_id "
                f"FROM {SoftBounceStreak._meta.db_table} "
                "WHERE domain_id = ANY(%s) AND recipient = ANY(%s)",
                [domains, recipients],
            )
            found = cursor.fetchall()
    else:
        found = SoftBounceStreak.objects.filter(
            domain_id__in=domains, recipient__in=recipients
        ).values_list("domain_id", "recipient", "count", "converted_message_id")
    return {(d, r): [n, c] for d, r, n, c in found if (d, r) in pairs}


def _count(rows: list[_Row]) -> tuple[dict, dict]:
    domain_counts: dict[tuple[int, date], Counter] = defaultdict(Counter)
    mailbox_counts: dict[tuple[int, date], Counter] = defaultdict(Counter)
    for row in rows:
        counter = KIND_COUNTER.get(row.event.kind.value)
        if counter is None:
            continue
        day = _when(row.event.occurred_at).date()
        targets = [domain_counts[(row.domain_id, day)]]
        if row.mailbox_id:
            targets.append(mailbox_counts[(row.mailbox_id, day)])
        for target in targets:
            target[counter] += 1
            if row.event.kind == EventKind.SENT and row.event.message_kind == "warmup":
                target["warmup_sent"] += 1
    return domain_counts, mailbox_counts


def _suppress(rows: list[_Row], now: datetime) -> None:
    reasons = {EventKind.BOUNCE_HARD: "hard_bounce", EventKind.COMPLAINT: "complaint"}
    entries = {
        (r.workspace_id, r.event.recipient): reasons[r.event.kind]
        for r in rows
        if r.event.kind in reasons and r.event.recipient
    }
    Suppression.objects.bulk_create(
        [
            Suppression(
                workspace_id=ws, address=address, reason=reason, source="mta", created_at=now
            )
            for (ws, address), reason in entries.items()
        ],
        ignore_conflicts=True,
    )


POSTGRES = "postgresql"


class _Claimed(NamedTuple):
    raw_id: int
    key: str
    payload: str  # JSON text, decoded record by record (one bad row must not fail the batch)
    received_at: datetime


def _claim(limit: int) -> list[_Claimed]:
    """Take queued records by deleting their queue rows; concurrent workers skip each other's
    rows, and a rollback puts them back."""
    raw, pending = RawRecord._meta.db_table, PendingRecord._meta.db_table
    if connection.vendor == POSTGRES:
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH claimed AS (DELETE FROM {pending} WHERE raw_record_id IN ("
                f"SELECT raw_record_id FROM {pending} ORDER BY raw_record_id LIMIT %s "
                "FOR UPDATE SKIP LOCKED) RETURNING raw_record_id) "
                f"SELECT r.id, r.record_key, r.payload, r.received_at FROM {raw} r "
                "JOIN claimed c ON c.raw_record_id = r.id ORDER BY r.id",
                [limit],
            )
            found = cursor.fetchall()
    else:
        ids = list(PendingRecord.objects.order_by("pk").values_list("pk", flat=True)[:limit])
        PendingRecord.objects.filter(pk__in=ids).delete()
        found = list(
            RawRecord.objects.filter(pk__in=ids)
            .order_by("pk")
            .values_list("id", "record_key", "payload", "received_at")
        )
    return [_Claimed(*row) for row in found]


EVENT_COLUMNS = (
    "domain_id",
    "mailbox_id",
    "kind",
    "recipient",
    "message_id",
    "message_kind",
    "classification",
    "detail",
    "occurred_at",
    "source_key",
    "raw_record_id",
    "outbound_id",
    "created_at",
)


def _events_insert(rows: list[tuple]) -> None:
    """Insert event rows (tuples in EVENT_COLUMNS order). On PostgreSQL, COPY straight into the
    table: a record is processed once, so its events are new; should a source key exist after
    all, the batch goes again through a temp table that skips known keys."""
    if not rows:
        return
    if connection.vendor != POSTGRES:
        Event.objects.bulk_create(
            [Event(**dict(zip(EVENT_COLUMNS, row, strict=True))) for row in rows],
            ignore_conflicts=True,
            batch_size=500,
        )
        return
    table = Event._meta.db_table
    columns = ", ".join(EVENT_COLUMNS)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            _copy(cursor, f"COPY {table} ({columns}) FROM STDIN", rows)
    except (IntegrityError, psycopg.IntegrityError):  # COPY runs on psycopg's own cursor
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS event_batch ON COMMIT DELETE ROWS AS "
                f"SELECT {columns} FROM {table} WITH NO DATA"
            )
            _copy(cursor, f"COPY event_batch ({columns}) FROM STDIN", rows)
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM event_batch "
                "ON CONFLICT (source_key) DO NOTHING"
            )
            cursor.execute("DELETE FROM event_batch")  # a later chunk of this batch reuses it


def _copy(cursor, sql: str, rows: list[tuple]) -> None:
    with cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def records_process_batch(*, limit: int | None = None, now: datetime | None = None) -> BatchOutcome:
    """Turn one batch of stored records into events and counters, exactly once (claimed with
    SKIP LOCKED); a record that cannot be processed becomes a dead letter and the rest go on.
    Scores and actions follow in `outcome_apply`."""
    now = now or timezone.now()
    limit = limit or settings.INTAKE_BATCH_SIZE
    with transaction.atomic():
        claimed = _claim(limit)
        if not claimed:
            return BatchOutcome()
        failed: dict[int, str] = {}
        groups: list[Mapped] = []
        for raw_id, key, payload, received_at in claimed:
            try:
                record = orjson.loads(payload)
            except orjson.JSONDecodeError as error:
                failed[raw_id] = _error_text(error)
                continue
            try:
                events = map_record(record, received_at=received_at.timestamp())
            except ValueError:
                continue  # not a log record: stored, nothing to count
            except Exception as error:
                failed[raw_id] = _error_text(error)
                continue
            if events:
                groups.append([(raw_id, f"{key}:{i}", e) for i, e in enumerate(events)])
        _receptions_lock(groups)
        outcome = _apply_isolating(groups, now, failed)
        if failed:
            dead_letters_record(failures=failed, now=now)
        outcome.records = len(claimed)
    return outcome


def _apply_isolating(groups: list[Mapped], now: datetime, failed: dict[int, str]) -> BatchOutcome:
    """`_apply` in a savepoint; on a failure the records are retried in halves until the one
    at fault is alone, and its error goes to `failed` (raw record id -> error text)."""
    if not groups:
        return BatchOutcome()
    try:
        with transaction.atomic():
            return _apply([m for group in groups for m in group], now)
    except Exception as error:
        if _infrastructure_error(error):
            raise  # the database went away or a deadlock: the whole batch is retried later
        if len(groups) == 1:
            failed[groups[0][0][0]] = _error_text(error)
            logger.warning("record %s set aside as a dead letter: %r", groups[0][0][0], error)
            return BatchOutcome()
    half = len(groups) // 2
    outcome = _apply_isolating(groups[:half], now, failed)
    outcome_merge(outcome, _apply_isolating(groups[half:], now, failed))
    return outcome


def _infrastructure_error(error: Exception) -> bool:
    return isinstance(
        error, OperationalError | InterfaceError | psycopg.OperationalError | psycopg.InterfaceError
    )


def _error_text(error: Exception) -> str:
    text = f"{type(error).__name__}: {error}"
    return text.replace("\x00", "\\x00")[:2000]


def _webhooks_queue(rows: list[_Row]) -> None:
    """Campaign messages' sent, delivered and bounced records become the workspaces' webhook
    events once the batch commits (one query skips workspaces with no endpoint)."""
    hooks = [
        WebhookEvent(
            r.workspace_id,
            EVENT_KIND_TYPES[r.event.kind.value],
            {
                "recipient": r.event.recipient,
                "message_id": r.event.message_id,
                "detail": r.event.response[:500],
                **(
                    {"bounce": "hard" if r.event.kind == EventKind.BOUNCE_HARD else "soft"}
                    if r.event.kind in (EventKind.BOUNCE_HARD, EventKind.BOUNCE_SOFT)
                    else {}
                ),
            },
            _when(r.event.occurred_at),
            webhook_event_id(r.key),
        )
        for r in rows
        if r.event.message_kind == "campaign" and r.event.kind.value in EVENT_KIND_TYPES
    ]
    if hooks:
        transaction.on_commit(partial(webhook_emit_many, events=hooks))


def _apply(mapped: Mapped, now: datetime) -> BatchOutcome:
    """The set-based steps for mapped events: Receptions taken back, resolve tenants and
    messages (setting unmatched reports aside), one complaint per message, streaks, events,
    message states, counters, suppressions."""
    outcome = BatchOutcome()
    taken_back = [m for m in mapped if m[2].kind == EventKind.RECEPTION_UNDONE]
    undone = _receptions_undone(mapped)
    if undone:
        # A Reception taken back counts as never logged, whether it was taken back in this batch
        # or an earlier one.
        mapped = [
            m for m in mapped if not (m[2].kind == EventKind.SENT and m[2].message_id in undone)
        ]
    resolved = _resolve(mapped)
    deferred = _reports_defer(resolved.unmatched)
    unmatched = [u for u in resolved.unmatched if u.raw_id not in deferred]
    rows: list[_Row] = []
    markers: list[_Row] = []
    for row in resolved.rows:
        if row.raw_id in deferred:
            continue
        (markers if row.event.kind == EventKind.RECEPTION_UNDONE else rows).append(row)
    _domains_lock(
        {r.domain_id for r in rows if r.event.kind == EventKind.COMPLAINT or _in_streak(r)}
    )
    rows, repeated = _complaints_once(rows)
    _unmatched_store(unmatched + repeated, now)
    if taken_back:
        domains, mailboxes = _receptions_take_back(taken_back, markers, now)
        outcome.domains |= domains
        outcome.mailboxes |= mailboxes
    derived, dropped = _soft_bounce_streaks(rows, now)
    rows = [r for r in rows if r.key not in dropped] + derived
    _events_insert(
        [
            (
                r.domain_id,
                r.mailbox_id,
                r.event.kind.value,
                r.event.recipient[:320],
                r.event.message_id[:64],
                r.event.message_kind[:16],
                r.event.classification[:40],
                r.event.response[:500],
                _when(r.event.occurred_at),
                r.key[:80],
                r.raw_id,
                r.outbound_id,
                now,
            )
            for r in rows
        ]
    )
    _outbound_advance(rows)
    domain_counts, mailbox_counts = _count(rows)
    domain_counters_add(domain_counts)
    mailbox_counters_add(mailbox_counts)
    _suppress(rows, now)
    _webhooks_queue(rows)

    outcome.events = len(rows)
    for row in rows:
        outcome.domains.add(row.domain_id)
        if row.mailbox_id:
            outcome.mailboxes.add(row.mailbox_id)
        if row.event.kind == EventKind.SPAM_BLOCK:
            outcome.spam_blocks[row.domain_id].append(row.event.response)
        if (
            row.event.kind == EventKind.COMPLAINT
            and row.mailbox_id
            and row.event.message_kind == "warmup"
        ):
            outcome.warmup_complaints[row.mailbox_id].append(row.event.recipient)
    return outcome


def outcome_merge(total: BatchOutcome, batch: BatchOutcome) -> None:
    total.records += batch.records
    total.events += batch.events
    total.domains |= batch.domains
    total.mailboxes |= batch.mailboxes
    for domain_id, responses in batch.spam_blocks.items():
        total.spam_blocks[domain_id] += responses
    for mailbox_id, recipients in batch.warmup_complaints.items():
        total.warmup_complaints[mailbox_id] += recipients


@transaction.atomic
def outcome_apply(outcome: BatchOutcome, now: datetime) -> None:
    """Rescore the domains the batches touched and apply the automatic actions, once per run
    (the counters are committed already; a crash here only delays the scores)."""
    changed = scores_recompute(domain_ids=outcome.domains, now=now)
    actions_evaluate(outcome=outcome, now=now, scores=changed)


def records_process(*, max_batches: int = 20, now: datetime | None = None) -> int:
    """Process batches until none are left (or `max_batches`), then rescore and act once."""
    total = BatchOutcome()
    for _ in range(max_batches):
        batch = records_process_batch(now=now)
        outcome_merge(total, batch)
        if not batch.records:
            break
    if total.domains:
        outcome_apply(total, now or timezone.now())
    return total.records
