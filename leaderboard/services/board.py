"""The board: each participant's numbers computed from its domains, kept in PostgreSQL and in a
Redis sorted set that serves ranks, and pushed live (rules: docs/leaderboard.md).

Redis holds two keys: the sorted set (member: the participant's id, score: the sort key of
`leaderboard.ranking`) and a hash of the public entries (handle, avatar seed, score, tier,
badges, streak), so the top of the board and anyone's neighbours are read without SQL. A third
key marks a complete build; without it (Redis flushed or restarted) pages say the board is
being rebuilt and the periodic rebuild restores it.
"""

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models import Max, Sum
from django.utils import timezone
from redis.typing import EncodableT

from accounts.services import workspace_notify
from leaderboard.badges import (
    Facts,
    TierStep,
    badges,
    completed_rehabilitation,
    external_streak_start,
    streak_days,
)
from leaderboard.models import Participant
from leaderboard.ranking import (
    DomainVolume,
    board_score,
    is_ranked,
    season_of,
    sort_key,
    to_go,
)
from leaderboard.store import BUILT, ENTRIES, RANKS, TOP, TOP_SIZE, board_key, board_redis
from reputation.core.metrics import window_start
from reputation.models import DomainDailyMetrics, ScoreHistory
from sending.models import DomainStatus, SendingDomain

logger = logging.getLogger(__name__)

GROUP = "leaderboard"  # the public live channel
CHUNK = 1000
TIER_ORDER = ("premium", "standard", "rehab", "quarantine")


# --- computing -----------------------------------------------------------------------------------


def _best_tier(tiers: Iterable[str]) -> str:
    known = [t for t in tiers if t in TIER_ORDER]
    return min(known, key=TIER_ORDER.index) if known else ""


def participants_compute(participants: Sequence[Participant], now: datetime) -> None:
    """Recompute and save the board numbers of `participants` (a handful of queries per
    chunk, whatever their domains)."""
    for start in range(0, len(participants), CHUNK):
        _compute_chunk(participants[start : start + CHUNK], now)


def _compute_chunk(chunk: Sequence[Participant], now: datetime) -> None:
    by_workspace = {p.workspace_id: p for p in chunk}
    domains = list(
        SendingDomain.objects.filter(workspace_id__in=by_workspace).values(
            "id", "workspace_id", "status", "trust_score", "tier", "verified_at"
        )
    )
    ids = [d["id"] for d in domains]
    sums: dict[int, Any] = {
        row["domain_id"]: row
        for row in DomainDailyMetrics.objects.filter(domain_id__in=ids, day__gte=window_start(now))
        .values("domain_id")
        .annotate(sent_sum=Sum("sent"), warm_sum=Sum("warmup_sent"))
        .order_by()
    }
    complaints = dict(
        DomainDailyMetrics.objects.filter(domain_id__in=ids, complaints__gt=0)
        .values("domain__workspace_id")
        .annotate(last=Max("day"))
        .values_list("domain__workspace_id", "last")
        .order_by()
    )
    history: dict[int, list[TierStep]] = defaultdict(list)
    for domain_id, at, tier, provisional in (
        ScoreHistory.objects.filter(domain_id__in=ids)
        .order_by("domain_id", "at", "id")
        .values_list("domain_id", "at", "tier", "provisional")
    ):
        history[domain_id].append(TierStep(at, tier, provisional))
    per_workspace: dict[int, list[Any]] = defaultdict(list)
    for domain in domains:
        per_workspace[domain["workspace_id"]].append(domain)
    season = season_of(now)
    for workspace_id, participant in by_workspace.items():
        live = [d for d in per_workspace[workspace_id] if d["status"] == DomainStatus.VERIFIED]
        volumes = []
        external = 0
        for d in live:
            row = sums.get(d["id"], {})
            sent = int(row.get("sent_sum") or 0)
            external += max(0, sent - int(row.get("warm_sum") or 0))
            volumes.append(DomainVolume(d["trust_score"], sent))
        score = board_score(volumes)
        streak = streak_days((external_streak_start(history[d["id"]]) for d in live), now)
        verified = min(
            (d["verified_at"] for d in per_workspace[workspace_id] if d["verified_at"]),
            default=None,
        )
        facts = Facts(
            streak_days=streak,
            first_verified=verified.date() if verified else None,
            last_complaint=complaints.get(workspace_id),
            sent_external=external,
            rehab_completed=any(
                completed_rehabilitation(history[d["id"]]) for d in per_workspace[workspace_id]
            ),
        )
        participant.board_score = score
        participant.tier = _best_tier(d["tier"] for d in live)
        participant.external_sent = external
        participant.ranked = is_ranked(score=score, external_sent=external)
        participant.streak_days = streak
        participant.badges = [b.code for b in badges(facts, now.date())]
        if participant.season != season:
            participant.season = season
            participant.season_start_score = score
        elif participant.season_start_score is None:
            participant.season_start_score = score
        participant.computed_at = now
    Participant.objects.bulk_update(
        chunk,
        [
            "board_score",
            "tier",
            "external_sent",
            "ranked",
            "streak_days",
            "badges",
            "season",
            "season_start_score",
            "computed_at",
        ],
        batch_size=500,
    )


# --- the public entry ----------------------------------------------------------------------------


def entry_of(participant: Participant, handle: str) -> dict[str, Any]:
    """What the public may see of a participant; nothing else ever leaves."""
    return {
        "handle": handle,
        "avatar": participant.avatar_seed,
        "score": participant.board_score,
        "tier": participant.tier,
        "badges": list(participant.badges),
        "streak_days": participant.streak_days,
        "gained": (
            None
            if participant.board_score is None or participant.season_start_score is None
            else round(participant.board_score - participant.season_start_score, 2)
        ),
    }


def _handles(participants: Sequence[Participant]) -> dict[int, str]:
    return {p.pk: p.workspace.leaderboard_handle for p in participants}


# --- Redis ---------------------------------------------------------------------------------------


def board_write(participants: Sequence[Participant]) -> None:
    """Put the participants' current numbers in Redis: ranked ones in the sorted set, every one
    in the entries hash (unranked ones are read by their own page only)."""
    if not participants:
        return
    client = board_redis()
    handles = _handles(participants)
    pipe = client.pipeline(transaction=True)
    for p in participants:
        pipe.hset(board_key(ENTRIES), str(p.pk), json.dumps(entry_of(p, handles[p.pk])))
        if p.ranked and p.board_score is not None:
            pipe.zadd(board_key(RANKS), {str(p.pk): sort_key(p.board_score, p.joined_at)})
        else:
            pipe.zrem(board_key(RANKS), str(p.pk))
    pipe.execute()
    _top_refresh(client)


def board_remove(participant_id: int) -> None:
    client = board_redis()
    pipe = client.pipeline(transaction=True)
    pipe.zrem(board_key(RANKS), str(participant_id))
    pipe.hdel(board_key(ENTRIES), str(participant_id))
    pipe.execute()
    _top_refresh(client)


def _top_refresh(client: redis.Redis) -> None:
    """Keep the first page ready-made (one GET serves the busiest read), from a consistent
    view of the sorted set and the entries: a write between the reads makes it start over."""
    ranks, entries, top = board_key(RANKS), board_key(ENTRIES), board_key(TOP)
    with client.pipeline() as pipe:
        while True:
            try:
                pipe.watch(ranks, entries)
                members: list[Any] = list(pipe.zrevrange(ranks, 0, TOP_SIZE - 1))
                raw = pipe.hmget(entries, members) if members else []
                page = []
                for rank, value in enumerate(raw, start=1):
                    if value is not None:
                        page.append({**json.loads(value), "rank": rank})
                pipe.multi()
                pipe.set(top, json.dumps(page))
                pipe.execute()
                return
            except redis.WatchError:
                continue


def board_rebuild(*, now: datetime | None = None) -> int:
    """Recompute every participant and replace the board in Redis in one step (the periodic
    rebuild; it also restores a flushed Redis). Returns how many are ranked."""
    now = now or timezone.now()
    participants = list(Participant.objects.select_related("workspace").order_by("pk"))
    participants_compute(participants, now)
    client = board_redis()
    ranks_tmp, entries_tmp = board_key(RANKS + ":new"), board_key(ENTRIES + ":new")
    client.delete(ranks_tmp, entries_tmp)
    handles = _handles(participants)
    ranked = 0
    for start in range(0, len(participants), CHUNK):
        pipe = client.pipeline(transaction=False)
        chunk = participants[start : start + CHUNK]
        entries: dict[EncodableT, EncodableT] = {
            str(p.pk): json.dumps(entry_of(p, handles[p.pk])) for p in chunk
        }
        if entries:
            pipe.hset(entries_tmp, mapping=entries)
        scores = {
            str(p.pk): sort_key(p.board_score, p.joined_at)
            for p in chunk
            if p.ranked and p.board_score is not None
        }
        if scores:
            pipe.zadd(ranks_tmp, scores)
        ranked += len(scores)
        pipe.execute()
    pipe = client.pipeline(transaction=True)
    for tmp, final in ((ranks_tmp, board_key(RANKS)), (entries_tmp, board_key(ENTRIES))):
        if client.exists(tmp):
            pipe.rename(tmp, final)
        else:
            pipe.delete(final)
    pipe.set(board_key(BUILT), now.isoformat())
    pipe.execute()
    _top_refresh(client)
    return ranked


def board_ready() -> bool:
    """Whether Redis holds a complete board (False after a flush, until the next rebuild)."""
    try:
        return bool(board_redis().exists(board_key(BUILT)))
    except redis.RedisError:
        return False


# --- live ----------------------------------------------------------------------------------------


def workspaces_refresh(*, workspace_ids: Iterable[int], now: datetime | None = None) -> int:
    """Recompute the participants among `workspace_ids` after a score change, update Redis and
    push the change to the public board and to each workspace's own socket."""
    now = now or timezone.now()
    participants = list(
        Participant.objects.select_related("workspace").filter(workspace_id__in=set(workspace_ids))
    )
    if not participants:
        return 0
    with transaction.atomic():
        participants_compute(participants, now)
    board_write(participants)
    for participant in participants:
        _push(participant)
    return len(participants)


def rank_of(participant_id: int) -> int | None:
    """1-based rank, or None when not ranked (or the board is not in Redis)."""
    try:
        found = board_redis().zrevrank(board_key(RANKS), str(participant_id))
    except redis.RedisError:
        return None
    return found + 1 if isinstance(found, int) else None


def _broadcast(event: str, payload: dict[str, Any]) -> None:
    """Send to every open public board; a lost live update never breaks the write behind it."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            GROUP, {"type": "board.event", "event": event, "payload": payload}
        )
    except Exception:
        logger.exception("leaderboard push failed")


def _push(participant: Participant) -> None:
    rank = rank_of(participant.pk)
    entry = {**entry_of(participant, participant.workspace.leaderboard_handle), "rank": rank}
    _broadcast("board", entry)
    workspace_notify(
        workspace=participant.workspace,
        event="leaderboard",
        payload={
            "rank": rank,
            "score": participant.board_score,
            "ranked": participant.ranked,
            "to_go": to_go(participant.external_sent),
        },
    )


def push_removed(handle: str) -> None:
    """Tell open boards a handle left (opt-out or a new handle)."""
    _broadcast("removed", {"handle": handle})
