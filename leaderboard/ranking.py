"""The board's pure rules: a workspace's board score, who is ranked, and the sort key that
puts ties in a stable order (rules: docs/leaderboard.md).

No Django, no Redis: plain values in, plain values out."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

# Campaign (external) messages a workspace must have sent in the window to be ranked: warm-up
# engagement is arranged by the network and alone would put everyone near 100.
RANKED_FLOOR = 200
# Board scores are compared at this many decimals; equal ones are ordered by who joined first.
SCORE_DECIMALS = 2
_SCALE = 100  # 10 ** SCORE_DECIMALS
_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
_SECONDS = 2**32  # joined times fit in 32 bits of seconds after _EPOCH (until 2156)


@dataclass(frozen=True)
class DomainVolume:
    score: float | None  # the domain's trust score; None while it has none
    sent: int  # everything it sent in the window (warm-up included): the weight


def board_score(domains: Iterable[DomainVolume]) -> float | None:
    """The send-volume-weighted mean of the scored domains' trust scores; None when no scored
    domain sent anything in the window."""
    weight = 0
    total = 0.0
    for domain in domains:
        if domain.score is None or domain.sent <= 0:
            continue
        weight += domain.sent
        total += domain.score * domain.sent
    if weight == 0:
        return None
    return round(min(100.0, max(0.0, total / weight)), SCORE_DECIMALS)


def is_ranked(*, score: float | None, external_sent: int) -> bool:
    return score is not None and external_sent >= RANKED_FLOOR


def to_go(external_sent: int) -> int:
    """External messages still needed to be ranked."""
    return max(0, RANKED_FLOOR - external_sent)


def sort_key(score: float, joined_at: datetime) -> float:
    """One number that orders the board: higher score first, and for equal scores (at
    SCORE_DECIMALS) the earlier joiner first. Exact in a double (at most 46 bits), so a Redis
    sorted set keeps the order."""
    points = round(min(100.0, max(0.0, score)) * _SCALE)
    joined = int((joined_at - _EPOCH).total_seconds())
    joined = min(max(joined, 0), _SECONDS - 1)
    return float(points * _SECONDS + (_SECONDS - 1 - joined))


def score_of(key: float) -> float:
    """The board score a sort key was made from."""
    return int(key) // _SECONDS / _SCALE


def season_of(moment: datetime) -> str:
    """The season (a calendar month, UTC) a moment falls in: "2026-12"."""
    return moment.astimezone(UTC).strftime("%Y-%m")


def gained(now: float | None, at_start: float | None) -> float | None:
    """Board score gained since the season began (None without both)."""
    if now is None or at_start is None:
        return None
    return round(now - at_start, SCORE_DECIMALS)


def histogram(scores: Iterable[float], *, buckets: int = 10) -> list[int]:
    """How many board scores fall in each of `buckets` equal bands of 0-100 (100 in the last)."""
    counts = [0] * buckets
    for score in scores:
        index = min(buckets - 1, max(0, int(score * buckets // 100)))
        counts[index] += 1
    return counts
