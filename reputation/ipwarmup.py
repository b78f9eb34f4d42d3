"""IP warm-up inside pools, pure: a new egress source's share of its pool's traffic
(docs/pool-map.md#ip-warm-up-weights).

Weeks 1-2: 5 %, weeks 3-4: 15 %, weeks 5-6: 30 %, from week 7 an equal share. Weights are
integers for KumoMTA's weighted round robin; a pulled source has weight 0.
"""

from datetime import date

WARMUP_SHARES = ((2, 0.05), (4, 0.15), (6, 0.30))  # (last week, share)
TOTAL_WEIGHT = 1000


def warmup_share(started: date, today: date) -> float | None:
    """The fixed share of a source still warming up, or None once it takes an equal share."""
    week = max(0, (today - started).days) // 7 + 1
    for last_week, share in WARMUP_SHARES:
        if week <= last_week:
            return share
    return None


def warmup_week(started: date, today: date) -> int:
    return max(0, (today - started).days) // 7 + 1


def pool_weights(sources: list[tuple[str, date]], today: date) -> dict[str, int]:
    """Integer weights for a pool's active sources (name, warm-up start); they sum to about
    TOTAL_WEIGHT. Warming sources get their share; warmed ones split the rest equally. A pool of
    only warming sources splits in proportion to their shares."""
    if not sources:
        return {}
    shares = {name: warmup_share(started, today) for name, started in sources}
    warmed = [name for name, share in shares.items() if share is None]
    warming = {name: share for name, share in shares.items() if share is not None}
    if not warmed:
        total = sum(warming.values())
        return {
            name: max(1, round(TOTAL_WEIGHT * share / total)) for name, share in warming.items()
        }
    fixed = min(sum(warming.values()), 0.9)  # warmed sources always keep at least 10 %
    scale = fixed / sum(warming.values()) if warming else 0
    weights = {name: max(1, round(TOTAL_WEIGHT * share * scale)) for name, share in warming.items()}
    rest = TOTAL_WEIGHT - sum(weights.values())
    for name in warmed:
        weights[name] = max(1, rest // len(warmed))
    return weights
