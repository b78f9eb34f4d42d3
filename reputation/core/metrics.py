"""Per-day counters, upserted (incremented), and the window sums the score is computed from."""

from collections import Counter
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Sum

from reputation.models import COUNTERS, DomainDailyMetrics, MailboxDailyMetrics
from reputation.scoring import WindowMetrics

# event kind -> counter it increments
KIND_COUNTER = {
    "sent": "sent",
    "delivered": "delivered",
    "bounce_hard": "hard_bounces",
    "bounce_soft": "soft_bounces",
    "complaint": "complaints",
    "opened": "unique_opens",
    "replied": "replies",
    "clicked": "clicks",
    "spam_block": "spam_blocks",
    "unsubscribed": "unsubscribes",
}


def counters_upsert(table: str, owner_column: str, counts: dict[tuple[int, date], Counter]) -> None:
    """Add `counts` to the day rows in one statement (INSERT ... ON CONFLICT DO UPDATE)."""
    if not counts:
        return
    columns = [owner_column, "day", *COUNTERS]
    rows = []
    params: list = []
    for (owner, day), counter in counts.items():
        rows.append("(" + ", ".join(["%s"] * len(columns)) + ")")
        params += [owner, day, *(counter.get(c, 0) for c in COUNTERS)]
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in COUNTERS)
    # Table and column names are constants of this module; every value is a parameter.
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join(rows)} "
        f"ON CONFLICT ({owner_column}, day) DO UPDATE SET {updates}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def domain_counters_add(counts: dict[tuple[int, date], Counter]) -> None:
    counters_upsert(DomainDailyMetrics._meta.db_table, "domain_id", counts)


def mailbox_counters_add(counts: dict[tuple[int, date], Counter]) -> None:
    counters_upsert(MailboxDailyMetrics._meta.db_table, "mailbox_id", counts)


def window_start(now: datetime) -> date:
    return now.date() - timedelta(days=settings.REPUTATION_WINDOW_DAYS - 1)


def _sums(model, owner: str, ids, now: datetime) -> dict[int, dict[str, int]]:
    rows = (
        model.objects.filter(**{f"{owner}__in": list(ids)}, day__gte=window_start(now))
        .values(owner)
        .annotate(**{c: Sum(c) for c in COUNTERS})
    )
    return {row[owner]: {c: row[c] or 0 for c in COUNTERS} for row in rows}


def domain_window_sums(domain_ids, now: datetime) -> dict[int, dict[str, int]]:
    return _sums(DomainDailyMetrics, "domain_id", domain_ids, now)


def mailbox_window_sums(mailbox_ids, now: datetime) -> dict[int, dict[str, int]]:
    return _sums(MailboxDailyMetrics, "mailbox_id", mailbox_ids, now)


def window_metrics(sums: dict[str, int] | None) -> WindowMetrics:
    sums = sums or {}
    return WindowMetrics(
        sent=sums.get("sent", 0),
        hard_bounces=sums.get("hard_bounces", 0),
        complaints=sums.get("complaints", 0),
        replies=sums.get("replies", 0),
        unique_opens=sums.get("unique_opens", 0),
    )
