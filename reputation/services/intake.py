"""Storing the MTA's log records durably, before the hook answers."""

import logging
from dataclasses import dataclass

import orjson
from django.db import connection, transaction

from reputation.mapping import record_key
from reputation.models import RawRecord

logger = logging.getLogger(__name__)


class MalformedBatch(ValueError):
    """The body is not a record or a list of records."""


def records_from_payload(data: object) -> list[dict]:
    """One record or a JSON array of records; anything else is refused whole."""
    records = data if isinstance(data, list) else [data]
    if not records:
        raise MalformedBatch("The batch is empty.")
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("type"), str):
            raise MalformedBatch(f"Record {index} is not a log record (an object with a type).")
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
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # The batch goes over as one JSON document and PostgreSQL splits it: no per-row
            # placeholders or escaping on the hot path.
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {RawRecord._meta.db_table} (record_key, payload, received_at) "
                    "SELECT k.key, r.value, now() "
                    "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS r(value, n) "
                    "JOIN unnest(string_to_array(%s, ',')) WITH ORDINALITY AS k(key, n) USING (n) "
                    "ON CONFLICT (record_key) DO NOTHING",
                    [orjson.dumps(list(unique.values())).decode(), ",".join(unique)],
                )
        else:
            RawRecord.objects.bulk_create(
                [RawRecord(record_key=key, payload=record) for key, record in unique.items()],
                ignore_conflicts=True,
                batch_size=500,
            )
        transaction.on_commit(records_processing_enqueue)
    return IntakeResult(received=len(records), unique=len(unique))


def records_processing_enqueue() -> None:
    """Queue processing; if the broker is down the records wait for the periodic safety net."""
    from reputation.tasks import records_process

    try:
        records_process.delay()
    except Exception:
        logger.warning("could not queue record processing; the periodic tick will pick it up")
