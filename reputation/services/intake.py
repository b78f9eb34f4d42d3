"""Storing the MTA's log records durably, before the hook answers."""

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction

from config.celery import task_enqueue
from reputation.mapping import record_key
from reputation.models import PendingRecord, RawRecord

logger = logging.getLogger(__name__)


class MalformedBatch(ValueError):
    """The body is not a record or a list of records."""


def records_from_payload(data: object) -> list[dict[str, Any]]:
    """One record or a JSON array of records; anything else is refused whole."""
    items: list[object] = data if isinstance(data, list) else [data]
    if not items:
        raise MalformedBatch("The batch is empty.")
    records: list[dict[str, Any]] = []
    for index, record in enumerate(items):
        if not isinstance(record, dict) or not isinstance(record.get("type"), str):
            raise MalformedBatch(f"Record {index} is not a log record (an object with a type).")
        records.append(record)
    return records


@dataclass(frozen=True)
class IntakeResult:
    received: int
    unique: int


def intake_store(*, records: list[dict]) -> IntakeResult:
    """Store raw records once each (replays change nothing); processing is queued after commit."""
    unique: dict[str, dict] = {}
    for record in records:
        unique.setdefault(record_key(record), record)
    rows = [(key, orjson.dumps(record).decode()) for key, record in unique.items()]
    with transaction.atomic():
        if connection.vendor == "postgresql":
            _store_postgres(rows)
        else:
            _store_orm(rows)
        transaction.on_commit(records_processing_enqueue)
    return IntakeResult(received=len(records), unique=len(unique))


def _store_postgres(rows: list[tuple[str, str]]) -> None:
    """COPY into a temp table, then one statement stores the new records and queues them."""
    raw, pending = RawRecord._meta.db_table, PendingRecord._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS raw_batch (record_key text, payload text) "
            "ON COMMIT DELETE ROWS"
        )
        with cursor.cursor.copy("COPY raw_batch (record_key, payload) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"WITH stored AS (INSERT INTO {raw} (record_key, payload, received_at) "
            "SELECT record_key, payload, now() FROM raw_batch "
            "ON CONFLICT (record_key) DO NOTHING RETURNING id) "
            f"INSERT INTO {pending} (raw_record_id) SELECT id FROM stored"
        )


def _store_orm(rows: list[tuple[str, str]]) -> None:
    known = set(
        RawRecord.objects.filter(record_key__in=[k for k, _ in rows]).values_list(
            "record_key", flat=True
        )
    )
    fresh = [RawRecord(record_key=k, payload=p) for k, p in rows if k not in known]
    RawRecord.objects.bulk_create(fresh, batch_size=500)
    stored = RawRecord.objects.filter(record_key__in=[r.record_key for r in fresh])
    PendingRecord.objects.bulk_create(
        [PendingRecord(raw_record_id=pk) for pk in stored.values_list("pk", flat=True)],
        batch_size=500,
    )


PROCESSING_SCHEDULED = "reputation:processing-scheduled"
PROCESSING_TASK = "reputation.tasks.records_process"
PROCESSING_DELAY = 0.5  # seconds: batches posted meanwhile are processed together


def records_processing_enqueue() -> None:
    """Queue processing once per short interval (not once per posted batch), so each run takes
    a large batch; if the broker is down the records wait for the periodic safety net."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        task_enqueue(PROCESSING_TASK)
        return
    try:
        if cache.add(PROCESSING_SCHEDULED, 1, timeout=30):
            task_enqueue(PROCESSING_TASK, countdown=PROCESSING_DELAY)
    except Exception as error:
        # The records are stored: the hook must still answer 2xx (or the MTA would post them
        # again and again). Redis (cache and broker) being down is the usual cause.
        logger.warning(
            "could not queue record processing (%r); the periodic tick will pick them up", error
        )
        # The next batch may try again; if the cache is down too, the flag expires on its own.
        with contextlib.suppress(Exception):
            cache.delete(PROCESSING_SCHEDULED)
