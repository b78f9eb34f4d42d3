"""Leaderboard read benchmark: "my rank and neighbours" and the top-100 page for a board of
100,000 ranked participants (plus 5 % unranked ones), read through the board's selectors from
the Redis sorted set; against the naive SQL path on the same rows in the same run (rank = 1 +
COUNT(*) of participants ahead by (board_score DESC, joined_at ASC), neighbours by ORDER BY
with OFFSET, the top page by ORDER BY ... LIMIT 100 with that COUNT per row), with the model's
(ranked, -board_score) index in place and the table vacuumed and analysed. p50 and p95 of 300
sampled participants and of 300 top-page reads; the ranks of both paths are checked against
each other (a mismatch fails the run). Redis: REDIS_URL's server, database 14
(`BENCH_REDIS_DB`), keys under `bench:lb:`, deleted at the end. Run with `make bench`."""

import gc
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.support import fresh_database  # noqa: E402

PARTICIPANTS = int(os.environ.get("BENCH_PARTICIPANTS", 100_000))
UNRANKED = PARTICIPANTS // 20
SAMPLES = 300
PAGE = 100
AROUND = 2  # neighbours above and below, as the selector's default
# The naive top page counts the rows ahead of each of its 100 rows: at 100,000 participants a
# read takes a second or more, so the SQL reads stop after this many seconds per query.
SQL_BUDGET = float(os.environ.get("BENCH_SQL_SECONDS", 45))
MIN_SAMPLES = 20
CHECKED = 30  # sampled participants whose ranks and neighbours are compared between paths
CHUNK = 5000
PREFIX = "bench:lb:"
REDIS_DB = os.environ.get("BENCH_REDIS_DB", "14")
JOINED_FROM = datetime(2021, 1, 1, tzinfo=UTC)
JOINED_SPAN = 5 * 365 * 86400  # seconds
TARGET_P95_MS = 5.0
TARGET_RATIO = 50.0

# The naive path: plain SQL, the rank of a row counted from the rows ahead of it.
ENTRY_COLUMNS = (
    "p.id, w.leaderboard_handle, p.avatar_seed, p.board_score, p.tier, p.badges, "
    "p.streak_days, p.season_start_score, p.joined_at"
)
FROM = "leaderboard_participant p JOIN accounts_workspace w ON w.id = p.workspace_id"
AHEAD = (
    "SELECT COUNT(*) FROM leaderboard_participant q WHERE q.ranked AND "
    "(q.board_score > {score} OR (q.board_score = {score} AND q.joined_at < {joined}))"
)
SQL_OWN = f"SELECT {ENTRY_COLUMNS} FROM {FROM} WHERE p.id = %s"
SQL_RANK = AHEAD.format(score="%s", joined="%s")
SQL_SLICE = (
    f"SELECT {ENTRY_COLUMNS} FROM {FROM} WHERE p.ranked AND p.board_score IS NOT NULL "
    "ORDER BY p.board_score DESC, p.joined_at ASC LIMIT %s OFFSET %s"
)
SQL_TOP = (
    f"SELECT {ENTRY_COLUMNS}, ({AHEAD.format(score='p.board_score', joined='p.joined_at')}) + 1 "
    f"FROM {FROM} WHERE p.ranked AND p.board_score IS NOT NULL "
    "ORDER BY p.board_score DESC, p.joined_at ASC LIMIT %s"
)


def entry(row: tuple[Any, ...], rank: int | None) -> dict[str, Any]:
    _, handle, avatar, score, tier, badges, streak, start, _ = row[:9]
    return {
        "handle": handle,
        "avatar": avatar,
        "score": score,
        "tier": tier,
        "badges": json.loads(badges) if isinstance(badges, str) else list(badges),
        "streak_days": streak,
        "gained": None if score is None or start is None else round(score - start, 2),
        "rank": rank,
    }


def sql_standing(cursor: Any, participant_id: int) -> tuple[int | None, list[dict[str, Any]]]:
    cursor.execute(SQL_OWN, [participant_id])
    own = cursor.fetchone()
    if own is None or own[3] is None:
        return None, []
    cursor.execute(SQL_RANK, [own[3], own[3], own[8]])
    rank = cursor.fetchone()[0] + 1
    start = max(1, rank - AROUND)
    cursor.execute(SQL_SLICE, [rank + AROUND - start + 1, start - 1])
    return rank, [entry(row, start + i) for i, row in enumerate(cursor.fetchall())]


def sql_page(cursor: Any) -> list[dict[str, Any]]:
    cursor.execute(SQL_TOP, [PAGE])
    return [entry(row, row[9]) for row in cursor.fetchall()]


def timed(calls: list[Callable[[], object]], *, budget: float | None = None) -> list[float]:
    """Milliseconds per call; with a `budget` (seconds), the calls stop once it is spent (and at
    least MIN_SAMPLES were made)."""
    gc.collect()
    spent = []
    deadline = time.perf_counter() + budget if budget else None
    for call in calls:
        started = time.perf_counter()
        call()
        done = time.perf_counter()
        spent.append((done - started) * 1000)
        if deadline and done > deadline and len(spent) >= MIN_SAMPLES:
            break
    return spent


def p50_p95(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[94]


def main() -> None:
    redis_url = urlsplit(os.environ["REDIS_URL"])._replace(path=f"/{REDIS_DB}").geturl()
    os.environ["LEADERBOARD_REDIS_URL"] = redis_url
    os.environ["LEADERBOARD_REDIS_PREFIX"] = PREFIX
    fresh_database("trustgate_bench_leaderboard")
    from leaderboard.store import board_redis

    client = board_redis()

    def clean() -> None:
        for name in client.scan_iter(f"{PREFIX}*"):
            client.delete(name)

    clean()
    try:
        populate()
        measure()
    finally:
        clean()


def populate() -> None:
    """Fill PostgreSQL and the Redis board with the same participants."""
    from django.db import connection

    from accounts.models import Workspace
    from leaderboard.models import Participant
    from leaderboard.services.board import board_write
    from leaderboard.store import BUILT, board_key, board_redis

    rng = random.Random(7)
    total = PARTICIPANTS + UNRANKED
    started = time.perf_counter()
    workspaces = Workspace.objects.bulk_create(
        (Workspace(name=f"Bench {i}", leaderboard_handle=f"Sender_{i:07d}") for i in range(total)),
        batch_size=CHUNK,
    )
    # Whole, distinct seconds: the board's sort key keeps seconds, so ties on score are broken
    # the same way by both paths.
    joined = rng.sample(range(JOINED_SPAN), total)
    season = datetime.now(UTC).strftime("%Y-%m")
    participants = []
    for i, workspace in enumerate(workspaces):
        score = round(rng.uniform(0, 100), 2)
        ranked = i < PARTICIPANTS
        participants.append(
            Participant(
                workspace=workspace,
                joined_at=JOINED_FROM + timedelta(seconds=joined[i]),
                terms_version="bench",
                board_score=score,
                tier=rng.choice(("premium", "standard", "rehab")),
                external_sent=rng.randint(200, 50_000) if ranked else rng.randint(0, 199),
                ranked=ranked,
                streak_days=rng.randint(0, 120),
                badges=rng.choice(([], ["first_100"], ["streak_30", "clean_90"])),
                season=season,
                season_start_score=round(max(0.0, score - rng.uniform(0, 10)), 2),
            )
        )
    Participant.objects.bulk_create(participants, batch_size=CHUNK)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE leaderboard_participant")
        cursor.execute("VACUUM ANALYZE accounts_workspace")
    loaded = time.perf_counter() - started

    started = time.perf_counter()
    for start in range(0, total, CHUNK):
        board_write(participants[start : start + CHUNK])
    board_redis().set(board_key(BUILT), datetime.now(UTC).isoformat())
    written = time.perf_counter() - started
    print(
        f"setup: {PARTICIPANTS:,} ranked + {UNRANKED:,} unranked participants in PostgreSQL in "
        f"{loaded:.1f} s, written to the Redis board with board_write in chunks of {CHUNK:,} in "
        f"{written:.1f} s"
    )


def measure() -> None:
    from django.db import connection

    from leaderboard.models import Participant
    from leaderboard.selectors import board_page, board_size, board_standing

    rng = random.Random(11)
    with connection.cursor() as cursor:
        indexes = connection.introspection.get_constraints(cursor, "leaderboard_participant")
    index = next(
        (
            name
            for name, spec in indexes.items()
            if spec["index"] and spec["columns"] == ["ranked", "board_score"]
        ),
        None,
    )
    if index is None:
        print("the model's (ranked, -board_score) index is missing from the database")
        sys.exit(1)
    size = board_size()
    if size != PARTICIPANTS:
        print(f"the Redis board holds {size:,} ranked participants, expected {PARTICIPANTS:,}")
        sys.exit(1)

    ids = list(Participant.objects.filter(ranked=True).values_list("pk", flat=True))
    sampled = [Participant(pk=pk) for pk in rng.sample(ids, SAMPLES)]

    # Correctness: both paths agree on ranks, neighbours and the top page.
    with connection.cursor() as cursor:
        wrong = []
        for participant in sampled[:CHECKED]:
            standing = board_standing(participant=participant, around=AROUND)
            rank, neighbours = sql_standing(cursor, participant.pk)
            if standing.rank != rank or standing.neighbours != neighbours:
                wrong.append((participant.pk, standing.rank, rank))
        if board_page(offset=0, limit=PAGE) != sql_page(cursor):
            wrong.append(("top page", None, None))
        unranked = Participant.objects.filter(ranked=False).first()
        if unranked is not None and board_standing(participant=unranked).rank is not None:
            wrong.append((unranked.pk, "ranked in Redis", None))
    if wrong:
        print(f"MISMATCH between the Redis board and SQL (id, redis rank, sql rank): {wrong[:5]}")
        sys.exit(1)
    print(
        f"check: ranks and neighbours of {CHECKED} sampled participants and the top-{PAGE} page "
        "are the same from Redis and from SQL"
    )

    with connection.cursor() as cursor:
        # Warm-up (connections, caches, plans) on another sample.
        for pk in rng.sample(ids, 30):
            board_standing(participant=Participant(pk=pk))
            sql_standing(cursor, pk)
            board_page(offset=0, limit=PAGE)
        sql_page(cursor)
        figures = {
            ("rank + neighbours", "redis"): timed(
                [lambda p=p: board_standing(participant=p, around=AROUND) for p in sampled]
            ),
            ("rank + neighbours", "sql"): timed(
                [lambda pk=p.pk: sql_standing(cursor, pk) for p in sampled], budget=SQL_BUDGET
            ),
            (f"top {PAGE}", "redis"): timed(
                [lambda: board_page(offset=0, limit=PAGE) for _ in range(SAMPLES)]
            ),
            (f"top {PAGE}", "sql"): timed(
                [lambda: sql_page(cursor) for _ in range(SAMPLES)], budget=SQL_BUDGET
            ),
        }

    verdicts = []
    for query in ("rank + neighbours", f"top {PAGE}"):
        fast = figures[(query, "redis")]
        slow = figures[(query, "sql")]
        fast50, fast95 = p50_p95(fast)
        slow50, slow95 = p50_p95(slow)
        ratio = slow95 / fast95
        verdicts.append(
            f"{query} {'met' if fast95 < TARGET_P95_MS and ratio >= TARGET_RATIO else 'NOT met'}"
        )
        print(
            f"{query}, {PARTICIPANTS:,} ranked: Redis board ({len(fast)} reads) p50 "
            f"{fast50:.2f} ms, p95 {fast95:.2f} ms; SQL ORDER BY + COUNT ({len(slow)} reads, "
            f"index {index}) p50 {slow50:.2f} ms, p95 {slow95:.2f} ms; ratio (p95): "
            f"{ratio:.1f}x faster"
        )
    print(
        f"target (Redis p95 < {TARGET_P95_MS:g} ms and >= {TARGET_RATIO:g}x the SQL p95): "
        + ", ".join(verdicts)
    )


if __name__ == "__main__":
    main()
