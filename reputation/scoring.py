"""Platform Trust Score rules as pure maths: no Django, no Celery (docs/trust-score.md,
docs/tiers-and-actions.md#tier-rules, docs/rehabilitation.md).

Scores are computed with exact fractions from the integer counts so that thresholds, worked
examples and the rehabilitation targets agree to the last digit; floats only leave this module.
"""

import enum
import math
from dataclasses import dataclass
from fractions import Fraction

SCORING_VERSION = 1
BASELINE = 50.0
MIN_SENT_FOR_SCORE = 20  # fewer sent in the window -> provisional score = baseline
EXTERNAL_THRESHOLD = 70.0  # tier gate
PREMIUM_THRESHOLD = 85.0
PROMOTION_HYSTERESIS = 2.0  # back to an external tier needs T >= 72
QUARANTINE_SPAM_PERCENT = 0.3

# Score weights per percentage point (docs/trust-score.md#score-formula); the 100 of "percent"
# is folded in where rates are used.
_REPLY_WEIGHT = Fraction(3, 2)
_OPEN_WEIGHT = Fraction(1, 5)
_BOUNCE_WEIGHT = Fraction(10)
_SPAM_WEIGHT = Fraction(1000)
_MIN_SCORE = Fraction(0)
_MAX_SCORE = Fraction(100)


class Tier(enum.StrEnum):
    PREMIUM = "premium"
    STANDARD = "standard"
    REHAB = "rehab"
    QUARANTINE = "quarantine"


@dataclass(frozen=True)
class WindowMetrics:
    sent: int = 0
    hard_bounces: int = 0
    complaints: int = 0
    replies: int = 0
    unique_opens: int = 0

    @property
    def delivered(self) -> int:
        return max(0, self.sent - self.hard_bounces)

    @property
    def bounce_percent(self) -> float:
        return 100 * self.hard_bounces / self.sent if self.sent else 0.0

    @property
    def spam_percent(self) -> float:
        return 100 * self.complaints / self.delivered if self.delivered else 0.0

    @property
    def reply_percent(self) -> float:
        return 100 * self.replies / self.delivered if self.delivered else 0.0

    @property
    def open_percent(self) -> float:
        return 100 * self.unique_opens / self.delivered if self.delivered else 0.0


@dataclass(frozen=True)
class TrustScore:
    value: float | None  # None when the domain is not verified (no score)
    provisional: bool
    version: int = SCORING_VERSION


@dataclass(frozen=True)
class RehabTarget:
    messages: int | None  # smallest x, or None when unreachable
    reachable: bool
    limit_score: float  # T as x -> infinity, clamped to [0, 100]
    reason: str  # "" when reachable; otherwise why, in plain words


def _decimal(value: float) -> Fraction:
    # Settings such as 0.1 or 0.35 mean those decimals; the binary float of 0.1 is a hair above
    # it and would turn "T only approaches 72" into "reachable after 8e19 messages".
    return Fraction(str(value))


def _percent(part: Fraction | int, whole: Fraction | int) -> Fraction:
    # A zero denominator means "nothing to measure", not an error (rates are 0 then).
    return Fraction(100) * part / whole if whole else Fraction(0)


def _raw(
    *,
    sent: Fraction | int,
    hard_bounces: Fraction | int,
    delivered: Fraction | int,
    complaints: Fraction | int,
    replies: Fraction | int,
    unique_opens: Fraction | int,
) -> Fraction:
    return (
        Fraction(BASELINE)
        + _REPLY_WEIGHT * _percent(replies, delivered)
        + _OPEN_WEIGHT * _percent(unique_opens, delivered)
        - _BOUNCE_WEIGHT * _percent(hard_bounces, sent)
        - _SPAM_WEIGHT * _percent(complaints, delivered)
    )


def _clamp(value: Fraction) -> Fraction:
    return min(_MAX_SCORE, max(_MIN_SCORE, value))


def _raw_of(metrics: WindowMetrics) -> Fraction:
    return _raw(
        sent=metrics.sent,
        hard_bounces=metrics.hard_bounces,
        delivered=metrics.delivered,
        complaints=metrics.complaints,
        replies=metrics.replies,
        unique_opens=metrics.unique_opens,
    )


def raw_score(metrics: WindowMetrics) -> float:
    """The score formula before clamping (diagnostics and tests; never a stored score)."""
    return float(_raw_of(metrics))


def trust_score(metrics: WindowMetrics, *, verified: bool) -> TrustScore:
    """The domain's trust score for its window, or no score when not verified."""
    if not verified:
        return TrustScore(None, provisional=False)
    if metrics.sent < MIN_SENT_FOR_SCORE:
        return TrustScore(BASELINE, provisional=True)
    # Computed exactly, then rounded half-up to 2 decimals; the tier gates compare this rounded
    # value, so the number a customer sees (e.g. 70.00) is the number the gate used. Values are
    # clamped to [0, 100] first, so half-up on a non-negative number is floor(v * 100 + 1/2).
    exact = _clamp(_raw_of(metrics))
    return TrustScore(math.floor(exact * 100 + Fraction(1, 2)) / 100, provisional=False)


def tier_for(
    *,
    score: TrustScore,
    previous: Tier | None,
    cooldown: bool = False,
    quarantined: bool = False,
    spam_percent: float = 0.0,
    hysteresis: float = PROMOTION_HYSTERESIS,
) -> Tier:
    """The tier for a score, with immediate demotion and hysteresis on promotion."""
    # Quarantine outranks everything, including "not verified" and "provisional": a spam rate
    # above the line stops all sending whatever else is true.
    if quarantined or spam_percent > QUARANTINE_SPAM_PERCENT:
        return Tier.QUARANTINE
    # No score (not verified) cannot send externally; provisional and cool-down wait internally.
    if score.value is None or score.provisional or cooldown:
        return Tier.REHAB
    gate = EXTERNAL_THRESHOLD
    # Only a domain coming back from a non-sending tier must clear the higher bar; a first
    # evaluation (previous None) and moves between premium and standard use plain thresholds.
    if previous in (Tier.REHAB, Tier.QUARANTINE):
        gate += hysteresis
    if score.value < gate:
        return Tier.REHAB
    return Tier.PREMIUM if score.value >= PREMIUM_THRESHOLD else Tier.STANDARD


def rehab_bounce_dilution(*, sent: int, hard_bounces: int, target_percent: float = 1.0) -> int:
    """Bounce dilution: the smallest x >= 0 clean sends with
    hard_bounces / (sent + x) <= target_percent."""
    if hard_bounces <= 0:
        return 0
    target = _decimal(target_percent)
    if target <= 0:
        raise ValueError("target_percent must be above 0 when there are hard bounces")
    # B / (N + x) <= t / 100  <=>  x >= 100 B / t - N, solved in exact arithmetic.
    needed = Fraction(100 * hard_bounces) / target - sent
    return max(0, math.ceil(needed))


def _after_clean_exact(
    metrics: WindowMetrics, x: int, reply_rate: Fraction, open_rate: Fraction
) -> Fraction:
    # Clean warming messages are all delivered and never bounce or complain; their replies and
    # opens use fractional expected counts so the answer does not jump with rounding.
    return _clamp(
        _raw(
            sent=metrics.sent + x,
            hard_bounces=metrics.hard_bounces,
            delivered=metrics.delivered + x,
            complaints=metrics.complaints,
            replies=metrics.replies + reply_rate * x,
            unique_opens=metrics.unique_opens + open_rate * x,
        )
    )


def score_after_clean(
    metrics: WindowMetrics, x: int, reply_rate: float = 0.25, open_rate: float = 0.60
) -> float:
    """Unrounded clamped T after adding x clean internal warming messages."""
    return float(_after_clean_exact(metrics, x, _decimal(reply_rate), _decimal(open_rate)))


def _ceil_div(p: int, q: int) -> int:
    return -((-p) // q)


def _first_solution(a: Fraction, b: Fraction, c: Fraction, lo: int) -> int | None:
    """Smallest integer x >= lo with a x^2 + b x + c >= 0, or None when there is none."""
    # Scale to integer coefficients (a positive factor keeps every sign) so the roots come from
    # math.isqrt with no float cancellation, whatever the size of the window.
    scale = math.lcm(a.denominator, b.denominator, c.denominator)
    qa, qb, qc = int(a * scale), int(b * scale), int(c * scale)

    def g(x: int) -> int:
        return (qa * x + qb) * x + qc

    if g(lo) >= 0:
        return lo
    if qa == 0:
        # Linear: only a rising line ever crosses zero after a negative start.
        return max(lo, _ceil_div(-qc, qb)) if qb > 0 else None
    disc = qb * qb - 4 * qa * qc
    if disc < 0:
        return None
    s = math.isqrt(disc)  # s <= sqrt(disc) < s + 1
    # Convex: g(lo) < 0 puts lo between the roots, so the answer is ceil(upper root), which is
    # ceil((-qb + s) / 2qa) or one more. Concave: g >= 0 only on [r1, r2]; ceil(r1) is
    # ceil((qb - s - 1) / -2qa) or one more, and if neither works (or both are before lo) no
    # integer x >= lo qualifies.
    first = _ceil_div(-qb + s, 2 * qa) if qa > 0 else _ceil_div(qb - s - 1, -2 * qa)
    for x in (first, first + 1):
        if x >= lo and g(x) >= 0:
            return x
    return None


def _fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _weigh(count: int) -> str:
    return "weighs" if count == 1 else "weigh"


def rehab_score_unlock(
    metrics: WindowMetrics,
    *,
    reply_rate: float = 0.25,
    open_rate: float = 0.60,
    target: float = 72.0,
    max_messages: int | None = None,
) -> RehabTarget:
    """Score unlock: fewest clean internal warming messages that lift T to target, or why never."""
    rr, orr, goal = _decimal(reply_rate), _decimal(open_rate), _decimal(target)
    limit_exact = Fraction(BASELINE) + 100 * (_REPLY_WEIGHT * rr + _OPEN_WEIGHT * orr)
    limit = float(_clamp(limit_exact))
    # The score only exists once the window is no longer provisional.
    lower = max(0, MIN_SENT_FOR_SCORE - metrics.sent)

    x: int | None
    if goal > _MAX_SCORE:
        return RehabTarget(
            None, False, limit, f"A score of {_fmt(target)} is above the maximum of 100."
        )
    if goal <= _MIN_SCORE or _after_clean_exact(metrics, lower, rr, orr) >= goal:
        x = lower
    else:
        # T(x) >= goal multiplied by (D + x)(N + x) > 0 is a quadratic in x; its leading
        # coefficient is limit - goal. While 0 < goal <= 100 the clamp never changes the answer.
        n, b, d = metrics.sent, metrics.hard_bounces, metrics.delivered
        base = Fraction(BASELINE) - goal
        e0 = 150 * metrics.replies + 20 * metrics.unique_opens - 100000 * metrics.complaints
        e1 = 150 * rr + 20 * orr
        qa = base + e1
        qb = base * (d + n) + e0 + e1 * n - 1000 * b
        qc = base * d * n + e0 * n - 1000 * b * d
        # With nothing delivered at x = 0 the product form is 0 >= 0 whatever T is; that
        # point was checked exactly above, so the quadratic starts one message later.
        start = lower if d + lower > 0 else lower + 1
        x = _first_solution(qa, qb, qc, start)

    if x is None:
        engagement = f"{_fmt(reply_rate * 100)}% replies, {_fmt(open_rate * 100)}% opens"
        if limit_exact < goal:
            where = f"below {_fmt(target)}"
        else:
            where = f"and never quite reaches {_fmt(target)}"
        reason = (
            f"Even unlimited clean warming tops out at {_fmt(limit)} with the network's "
            f"engagement ({engagement}), {where}."
        )
        return RehabTarget(None, False, limit, reason)
    if max_messages is not None and x > max_messages:
        return RehabTarget(x, False, limit, _too_many_reason(metrics, x, max_messages))
    return RehabTarget(x, True, limit, "")


def _too_many_reason(metrics: WindowMetrics, x: int, max_messages: int) -> str:
    head = f"It would take {x:,} clean warming messages, more than the {max_messages:,} allowed:"
    spam_penalty = _SPAM_WEIGHT * _percent(metrics.complaints, metrics.delivered)
    bounce_penalty = _BOUNCE_WEIGHT * _percent(metrics.hard_bounces, metrics.sent)
    if metrics.complaints and spam_penalty >= bounce_penalty:
        return (
            f"{head} {_plural(metrics.complaints, 'complaint')} in the window "
            f"{_weigh(metrics.complaints)} too much: wait for them to age out of the window."
        )
    if metrics.hard_bounces:
        return (
            f"{head} {_plural(metrics.hard_bounces, 'hard bounce')} in the window "
            f"{_weigh(metrics.hard_bounces)} too much: clean the lists and wait for them to age "
            "out of the window."
        )
    return (
        f"{head} the window's low engagement takes too long to dilute: wait for it to age out "
        "of the window."
    )
