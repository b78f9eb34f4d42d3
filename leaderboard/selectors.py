"""Reads of the board. Ranks, the top of the board, neighbours and the spread of scores come
from Redis (no SQL); the season view and a workspace's own participation from PostgreSQL.

Every entry is the public one built by the board service: handle, avatar seed, score, tier,
badges, streak, season gain, rank. None of these reads returns anything else."""

import json
from dataclasses import dataclass
from typing import Any

import redis
from django.db.models import F

from accounts.models import Workspace
from leaderboard.models import Participant
from leaderboard.ranking import histogram, score_of, to_go
from leaderboard.store import BUILT, ENTRIES, RANKS, TOP, TOP_SIZE, board_key, board_redis

Entry = dict[str, Any]


class BoardUnavailable(Exception):
    """Redis does not hold a complete board (flushed, restarted or unreachable)."""


def _client() -> redis.Redis:
    client = board_redis()
    try:
        if not client.exists(board_key(BUILT)):
            raise BoardUnavailable
    except redis.RedisError as error:
        raise BoardUnavailable from error
    return client


def _entries(client: redis.Redis, members: list[Any], first_rank: int) -> list[Entry]:
    if not members:
        return []
    raw = client.hmget(board_key(ENTRIES), members)
    found = []
    for offset, value in enumerate(raw):
        if value is None:
            continue
        entry = json.loads(value)
        entry["rank"] = first_rank + offset
        found.append(entry)
    return found


def board_size() -> int:
    """How many are ranked."""
    try:
        return int(_client().zcard(board_key(RANKS)))
    except redis.RedisError as error:
        raise BoardUnavailable from error


def board_page(*, offset: int = 0, limit: int = 100) -> list[Entry]:
    """Ranked entries from `offset` (0 = the top), best first. The first page is served from
    its ready-made copy (one round trip)."""
    if limit < 1 or offset < 0:
        return []
    if offset == 0 and limit <= TOP_SIZE:
        try:
            built, top = board_redis().mget([board_key(BUILT), board_key(TOP)])
        except redis.RedisError as error:
            raise BoardUnavailable from error
        if built is None:
            raise BoardUnavailable
        if top is not None:
            page: list[Entry] = json.loads(top)
            return page[:limit]
    client = _client()
    try:
        members = client.zrevrange(board_key(RANKS), offset, offset + limit - 1)
        return _entries(client, list(members), offset + 1)
    except redis.RedisError as error:
        raise BoardUnavailable from error


@dataclass(frozen=True)
class Standing:
    rank: int | None  # None: not ranked
    entry: Entry | None  # the workspace's own public entry
    neighbours: list[Entry]  # the ranked entries around it, best first, itself included


def board_standing(*, participant: Participant, around: int = 2) -> Standing:
    """The participant's rank and the `around` entries above and below it."""
    client = _client()
    member = str(participant.pk)
    try:
        found = client.zrevrank(board_key(RANKS), member)
        own = client.hget(board_key(ENTRIES), member)
        entry = json.loads(own) if own else None
        if not isinstance(found, int):
            return Standing(None, entry, [])
        start = max(0, found - around)
        members = client.zrevrange(board_key(RANKS), start, found + around)
        neighbours = _entries(client, list(members), start + 1)
    except redis.RedisError as error:
        raise BoardUnavailable from error
    if entry is not None:
        entry["rank"] = found + 1
    return Standing(found + 1, entry, neighbours)


def board_distribution(*, buckets: int = 10) -> list[int]:
    """How many ranked scores fall in each band of 0-100 (from the sorted set's keys)."""
    client = _client()
    try:
        keys = client.zrange(board_key(RANKS), 0, -1, withscores=True)
    except redis.RedisError as error:
        raise BoardUnavailable from error
    return histogram((score_of(float(pair[1])) for pair in keys), buckets=buckets)


def season_most_improved(*, limit: int = 100) -> list[Entry]:
    """This season's ranked participants by board score gained since it began, most first."""
    rows = (
        Participant.objects.filter(
            ranked=True, board_score__isnull=False, season_start_score__isnull=False
        )
        .annotate(gain=F("board_score") - F("season_start_score"))
        .filter(gain__gt=0)
        .select_related("workspace")
        .order_by("-gain", "joined_at", "pk")[:limit]
    )
    return [
        {
            "handle": p.workspace.leaderboard_handle,
            "avatar": p.avatar_seed,
            "score": p.board_score,
            "tier": p.tier,
            "badges": list(p.badges),
            "gained": round(p.gain, 2),
            "rank": place,
        }
        for place, p in enumerate(rows, start=1)
    ]


def participant_get(*, workspace: Workspace) -> Participant | None:
    return Participant.objects.filter(workspace=workspace).first()


@dataclass(frozen=True)
class WorkspaceStanding:
    """A workspace's own view of the board (dashboard card, its leaderboard page)."""

    participant: Participant | None
    standing: Standing | None  # None: not participating, or the board is being rebuilt
    unavailable: bool  # Redis holds no complete board right now

    @property
    def to_go(self) -> int:
        sent = self.participant.external_sent if self.participant else 0
        return to_go(sent)


def workspace_standing(*, workspace: Workspace) -> WorkspaceStanding:
    participant = participant_get(workspace=workspace)
    if participant is None:
        return WorkspaceStanding(None, None, False)
    try:
        return WorkspaceStanding(participant, board_standing(participant=participant), False)
    except BoardUnavailable:
        return WorkspaceStanding(participant, None, True)
