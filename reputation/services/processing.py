"""Turning stored records into events, counters, suppressions and fresh scores, in batches.

A batch is processed set-based (a handful of statements for thousands of records) inside a
savepoint. Should a record make it fail, the batch is split in halves and each half retried in
its own savepoint, down to the single record, which is set aside as a dead letter with its
error: one bad record costs a few extra statements, never the batch, and is never claimed again.
"""

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import NamedTuple

import orjson
import psycopg
from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from reputation.core.metrics import KIND_COUNTER, domain_counters_add, mailbox_counters_add
from reputation.core.scores import scores_recompute
from reputation.mapping import EventKind, MappedEvent, map_record
from reputation.models import Event, PendingRecord, RawRecord, SoftBounceStreak
from reputation.services.actions import actions_evaluate
from reputation.services.dead_letters import dead_letters_record
from sending.models import DomainStatus, Mailbox, SendingDomain, Suppression

logger = logging.getLogger(__name__)

SOFT_BOUNCES_TO_HARD = 5
STREAK_LOCK = 4201  # advisory lock namespace for soft-bounce streaks


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


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _resolve(mapped: list[tuple[int, str, MappedEvent]]) -> list[_Row]:
    """Attach each event to its sending domain (the tenant) and mailbox; drop unknown tenants."""
    tenants = {e.tenant for _, _, e in mapped if e.tenant}
    domains = {
        public_id: (pk, workspace_id)
        for public_id, pk, workspace_id in SendingDomain.objects.filter(public_id__in=tenants)
        .exclude(status=DomainStatus.RETIRED)
        .values_list("public_id", "pk", "workspace_id")
    }
    locals_by_domain: dict[int, set[str]] = defaultdict(set)
    for _, _, e in mapped:
        if e.tenant in domains and "@" in e.mailbox:
            locals_by_domain[domains[e.tenant][0]].add(e.mailbox.split("@", 1)[0])
    mailboxes = {}
    if locals_by_domain:
        for pk, domain_id, local_part in Mailbox.objects.filter(
            domain_id__in=list(locals_by_domain),
            local_part__in={lp for lps in locals_by_domain.values() for lp in lps},
        ).values_list("pk", "domain_id", "local_part"):
            mailboxes[(domain_id, local_part)] = pk
    rows = []
    for raw_id, key, e in mapped:
        if e.tenant not in domains:
            continue
        domain_id, workspace_id = domains[e.tenant]
        local = e.mailbox.split("@", 1)[0] if "@" in e.mailbox else ""
        rows.append(
            _Row(raw_id, key, e, domain_id, workspace_id, mailboxes.get((domain_id, local)))
        )
    return rows


def _soft_bounce_streaks(rows: list[_Row], now: datetime) -> tuple[list[_Row], set[str]]:
    """Count consecutive soft bounces per recipient; the fifth becomes a hard bounce.

    Returns the derived hard bounces, and the keys of real hard bounces to drop because they
    are the same message's later expiry (already counted once)."""
    kinds = (EventKind.BOUNCE_SOFT, EventKind.DELIVERED, EventKind.BOUNCE_HARD)
    relevant = [r for r in rows if r.event.recipient and r.event.kind in kinds]
    if not relevant:
        return [], set()
    if connection.vendor == POSTGRES:
        # Parallel workers must not interleave one domain's streaks (last writer would win).
        with connection.cursor() as cursor:
            for domain_id in sorted({r.domain_id for r in relevant}):
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [STREAK_LOCK, domain_id])
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
                derived.append(
                    _Row(
                        row.raw_id,
                        row.key + ":hard",
                        hard,
                        row.domain_id,
                        row.workspace_id,
                        row.mailbox_id,
                    )
                )
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


Mapped = list[tuple[int, str, MappedEvent]]  # (raw record id, source key, event)


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


def _apply(mapped: Mapped, now: datetime) -> BatchOutcome:
    """The set-based steps for mapped events: resolve tenants, streaks, events, counters,
    suppressions."""
    outcome = BatchOutcome()
    rows = _resolve(mapped)
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
                now,
            )
            for r in rows
        ]
    )
    domain_counts, mailbox_counts = _count(rows)
    domain_counters_add(domain_counts)
    mailbox_counters_add(mailbox_counts)
    _suppress(rows, now)

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
