"""Platform Trust Score rules (docs/trust-score.md, docs/tiers-and-actions.md#tier-rules,
docs/rehabilitation.md): worked examples and properties, no database."""

from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reputation.scoring import (
    BASELINE,
    MIN_SENT_FOR_SCORE,
    SCORING_VERSION,
    Tier,
    TrustScore,
    WindowMetrics,
    raw_score,
    rehab_bounce_dilution,
    rehab_score_unlock,
    score_after_clean,
    tier_for,
    trust_score,
)

SCORING_PY = Path(__file__).resolve().parents[2] / "reputation" / "scoring.py"


def score_of(sent: int, hard: int, complaints: int, replies: int, opens: int) -> float | None:
    return trust_score(WindowMetrics(sent, hard, complaints, replies, opens), verified=True).value


def scored(value: float) -> TrustScore:
    return TrustScore(value, provisional=False)


@st.composite
def windows(
    draw: st.DrawFn,
    min_sent: int = MIN_SENT_FOR_SCORE,
    max_sent: int = 5000,
    max_complaints: int | None = None,
):
    # Consistent counts: bounces within sent; complaints, replies and opens within delivered.
    sent = draw(st.integers(min_sent, max_sent))
    hard = draw(st.integers(0, sent))
    delivered = sent - hard
    complaints_cap = delivered if max_complaints is None else min(delivered, max_complaints)
    return WindowMetrics(
        sent=sent,
        hard_bounces=hard,
        complaints=draw(st.integers(0, complaints_cap)),
        replies=draw(st.integers(0, delivered)),
        unique_opens=draw(st.integers(0, delivered)),
    )


# docs/trust-score.md#worked-examples


def test_it_scores_the_engaged_clean_example() -> None:
    assert score_of(1000, 0, 0, 150, 400) == 80.5


def test_it_scores_five_percent_bounces_to_zero() -> None:
    assert score_of(100, 5, 0, 0, 0) == 0


def test_it_clamps_one_complaint_in_990_deliveries_to_zero() -> None:
    assert score_of(1000, 10, 1, 300, 500) == 0
    assert raw_score(WindowMetrics(1000, 10, 1, 300, 500)) == pytest.approx(-5.45, abs=0.01)


def test_it_scores_the_one_percent_bounce_example() -> None:
    assert score_of(2000, 20, 0, 396, 990) == 80


def test_it_scores_the_large_window_example_to_two_decimals() -> None:
    assert score_of(10000, 50, 1, 2985, 5970) == 91.95
    assert raw_score(WindowMetrics(10000, 50, 1, 2985, 5970)) == pytest.approx(91.95, abs=0.005)


def test_it_gives_no_score_to_an_unverified_domain() -> None:
    score = trust_score(WindowMetrics(1000, 0, 0, 150, 400), verified=False)
    assert score == TrustScore(None, provisional=False)


def test_it_gives_a_provisional_baseline_below_twenty_sent() -> None:
    score = trust_score(WindowMetrics(19, 5, 1, 0, 0), verified=True)
    assert score == TrustScore(BASELINE, provisional=True)
    assert score.version == SCORING_VERSION
    assert trust_score(WindowMetrics(20), verified=True) == TrustScore(50.0, provisional=False)


def test_it_reports_zero_rates_when_nothing_was_sent_or_delivered() -> None:
    empty = WindowMetrics()
    all_bounced = WindowMetrics(sent=30, hard_bounces=30)
    assert (empty.bounce_percent, empty.spam_percent, empty.reply_percent) == (0, 0, 0)
    assert all_bounced.delivered == 0
    assert all_bounced.open_percent == 0
    assert all_bounced.bounce_percent == 100
    assert WindowMetrics(sent=3, hard_bounces=5).delivered == 0


# docs/tiers-and-actions.md#tier-rules


def test_it_puts_85_in_premium_and_84_99_in_standard() -> None:
    assert tier_for(score=scored(85.0), previous=None) == Tier.PREMIUM
    assert tier_for(score=scored(84.99), previous=Tier.PREMIUM) == Tier.STANDARD


def test_it_keeps_a_standard_domain_at_70_standard() -> None:
    assert tier_for(score=scored(70.0), previous=Tier.STANDARD) == Tier.STANDARD


def test_it_uses_plain_thresholds_on_a_first_evaluation() -> None:
    assert tier_for(score=scored(70.0), previous=None) == Tier.STANDARD


def test_it_keeps_a_rehab_domain_at_70_in_rehab() -> None:
    assert tier_for(score=scored(70.0), previous=Tier.REHAB) == Tier.REHAB
    assert tier_for(score=scored(71.99), previous=Tier.REHAB) == Tier.REHAB


def test_it_promotes_from_rehab_at_72() -> None:
    assert tier_for(score=scored(72.0), previous=Tier.REHAB) == Tier.STANDARD
    assert tier_for(score=scored(90.0), previous=Tier.REHAB) == Tier.PREMIUM


def test_it_needs_72_to_leave_quarantine_once_the_reasons_are_gone() -> None:
    assert tier_for(score=scored(71.0), previous=Tier.QUARANTINE) == Tier.REHAB
    assert tier_for(score=scored(72.0), previous=Tier.QUARANTINE) == Tier.STANDARD


def test_it_honours_a_custom_hysteresis() -> None:
    assert tier_for(score=scored(72.0), previous=Tier.REHAB, hysteresis=3.0) == Tier.REHAB
    assert tier_for(score=scored(70.0), previous=Tier.REHAB, hysteresis=0.0) == Tier.STANDARD


def test_it_keeps_provisional_unverified_and_cooldown_domains_in_rehab() -> None:
    assert tier_for(score=TrustScore(50.0, provisional=True), previous=None) == Tier.REHAB
    assert tier_for(score=TrustScore(None, provisional=False), previous=None) == Tier.REHAB
    assert tier_for(score=scored(95.0), previous=Tier.PREMIUM, cooldown=True) == Tier.REHAB


def test_it_quarantines_above_0_3_percent_spam_or_when_flagged() -> None:
    assert tier_for(score=scored(95.0), previous=Tier.PREMIUM, spam_percent=0.31) == (
        Tier.QUARANTINE
    )
    assert tier_for(score=scored(95.0), previous=Tier.PREMIUM, spam_percent=0.3) == Tier.PREMIUM
    assert tier_for(score=scored(95.0), previous=None, quarantined=True) == Tier.QUARANTINE
    assert tier_for(score=TrustScore(None, False), previous=None, quarantined=True) == (
        Tier.QUARANTINE
    )


# docs/rehabilitation.md


def test_it_dilutes_five_bounces_in_a_hundred_with_400_clean_sends() -> None:
    x = rehab_bounce_dilution(sent=100, hard_bounces=5)
    assert x == 400
    assert Fraction(5, 100 + x) <= Fraction(1, 100)
    assert Fraction(5, 100 + x - 1) > Fraction(1, 100)


def test_it_needs_no_dilution_without_bounces_or_below_the_target() -> None:
    assert rehab_bounce_dilution(sent=0, hard_bounces=0) == 0
    assert rehab_bounce_dilution(sent=1000, hard_bounces=10) == 0
    assert rehab_bounce_dilution(sent=100, hard_bounces=5, target_percent=2.0) == 150


def test_it_refuses_a_zero_dilution_target() -> None:
    with pytest.raises(ValueError):
        rehab_bounce_dilution(sent=100, hard_bounces=5, target_percent=0)


def test_it_needs_no_warming_when_the_domain_already_meets_the_target() -> None:
    unlock = rehab_score_unlock(WindowMetrics(1000, 0, 0, 150, 400))
    assert unlock.messages == 0
    assert unlock.reachable
    assert unlock.reason == ""
    assert unlock.limit_score == 99.5


def test_it_fills_a_provisional_window_up_to_twenty_sent() -> None:
    assert rehab_score_unlock(WindowMetrics()).messages == 20
    assert rehab_score_unlock(WindowMetrics(5)).messages == 15


def test_it_unlocks_the_five_percent_bounce_example() -> None:
    metrics = WindowMetrics(100, 5, 0, 0, 0)
    unlock = rehab_score_unlock(metrics)
    assert unlock.reachable
    assert score_after_clean(metrics, unlock.messages) >= 72
    assert score_after_clean(metrics, unlock.messages - 1) < 72


def test_it_unlocks_a_window_with_nothing_delivered() -> None:
    metrics = WindowMetrics(sent=30, hard_bounces=30)
    assert score_after_clean(metrics, 0) == 0
    unlock = rehab_score_unlock(metrics)
    assert unlock.reachable
    assert score_after_clean(metrics, unlock.messages) >= 72
    assert score_after_clean(metrics, unlock.messages - 1) < 72


def test_it_says_why_when_the_network_engagement_cannot_reach_72() -> None:
    unlock = rehab_score_unlock(WindowMetrics(1000, 10, 0, 0, 0), reply_rate=0, open_rate=0)
    assert unlock.messages is None
    assert not unlock.reachable
    assert unlock.limit_score == 50
    assert "tops out at 50" in unlock.reason
    assert "below 72" in unlock.reason


def test_it_says_when_the_limit_only_approaches_the_target() -> None:
    # 50 + 150 * 0.1 + 20 * 0.35 = 72 exactly: T creeps up to 72 without ever reaching it. The
    # rates are read as decimals, so float noise cannot turn this into "8e19 messages".
    unlock = rehab_score_unlock(WindowMetrics(1000, 10, 0, 0, 0), reply_rate=0.1, open_rate=0.35)
    assert unlock.messages is None
    assert not unlock.reachable
    assert "never quite reaches 72" in unlock.reason
    assert unlock.limit_score == 72


def test_it_blames_complaints_beyond_the_message_cap() -> None:
    unlock = rehab_score_unlock(WindowMetrics(1000, 10, 5, 300, 500), max_messages=1000)
    assert not unlock.reachable
    assert unlock.messages is not None
    assert unlock.messages > 1000
    assert "5 complaints in the window weigh too much" in unlock.reason
    assert "age out of the window" in unlock.reason


def test_it_blames_bounces_beyond_the_message_cap() -> None:
    unlock = rehab_score_unlock(WindowMetrics(1000, 100, 0, 300, 500), max_messages=100)
    assert not unlock.reachable
    assert unlock.messages is not None
    assert unlock.messages > 100
    assert "100 hard bounces in the window weigh too much" in unlock.reason


def test_it_finds_a_window_that_only_opens_after_the_provisional_floor() -> None:
    # Without network engagement T falls towards 50 as x grows, but the first scored point
    # (x = 15, sent = 20) still carries the window's own replies.
    metrics = WindowMetrics(5, 0, 0, 5, 5)
    unlock = rehab_score_unlock(metrics, reply_rate=0, open_rate=0)
    assert unlock.messages == 15
    assert unlock.reachable


def test_it_refuses_a_target_above_100() -> None:
    unlock = rehab_score_unlock(WindowMetrics(1000), target=100.5)
    assert not unlock.reachable
    assert "above the maximum" in unlock.reason


# Properties


@given(windows(min_sent=0))
def test_the_score_stays_between_0_and_100(metrics: WindowMetrics) -> None:
    value = trust_score(metrics, verified=True).value
    assert value is not None
    assert 0 <= value <= 100


@given(st.data())
def test_more_hard_bounces_never_raise_the_score(data: st.DataObject) -> None:
    sent = data.draw(st.integers(MIN_SENT_FOR_SCORE, 5000))
    hard = data.draw(st.integers(0, sent))
    more = data.draw(st.integers(hard, sent))
    # Other counts must fit the smaller delivered count of the worse window.
    room = sent - more
    complaints, replies, opens = (data.draw(st.integers(0, room)) for _ in range(3))
    better = score_of(sent, hard, complaints, replies, opens)
    worse = score_of(sent, more, complaints, replies, opens)
    assert worse <= better


@given(st.data())
def test_more_complaints_never_raise_the_score(data: st.DataObject) -> None:
    metrics = data.draw(windows())
    more = data.draw(st.integers(metrics.complaints, metrics.delivered))
    worse = WindowMetrics(
        metrics.sent, metrics.hard_bounces, more, metrics.replies, metrics.unique_opens
    )
    assert score_of(*_counts(worse)) <= score_of(*_counts(metrics))


@given(st.data())
def test_more_replies_never_lower_the_score(data: st.DataObject) -> None:
    metrics = data.draw(windows())
    more = data.draw(st.integers(metrics.replies, metrics.delivered))
    better = WindowMetrics(
        metrics.sent, metrics.hard_bounces, metrics.complaints, more, metrics.unique_opens
    )
    assert score_of(*_counts(better)) >= score_of(*_counts(metrics))


def _counts(m: WindowMetrics) -> tuple[int, int, int, int, int]:
    return m.sent, m.hard_bounces, m.complaints, m.replies, m.unique_opens


near_gate = st.lists(
    st.integers(7000, 7199).map(lambda cents: cents / 100), min_size=1, max_size=30
)


@given(near_gate, st.sampled_from([Tier.REHAB, Tier.QUARANTINE]))
def test_a_rehab_domain_oscillating_below_72_stays_in_rehab(
    values: list[float], start: Tier
) -> None:
    tier = start
    for value in values:
        tier = tier_for(score=scored(value), previous=tier)
        assert tier == Tier.REHAB


@given(near_gate)
def test_a_standard_domain_oscillating_between_70_and_72_stays_standard(
    values: list[float],
) -> None:
    tier = Tier.STANDARD
    for value in values:
        tier = tier_for(score=scored(value), previous=tier)
        assert tier == Tier.STANDARD


@given(
    st.floats(0, 69.99, allow_nan=False),
    st.sampled_from([None, *Tier]),
    st.floats(0, 10, allow_nan=False),
)
def test_demotion_below_70_is_immediate(
    value: float, previous: Tier | None, hysteresis: float
) -> None:
    assert tier_for(score=scored(value), previous=previous, hysteresis=hysteresis) == Tier.REHAB


@given(
    st.integers(0, 100_000),
    st.integers(0, 5_000),
    st.sampled_from([0.5, 1.0, 2.0, 3.0, 0.1, 0.3]),
)
def test_bounce_dilution_is_the_smallest_sufficient_count(
    sent: int, hard: int, target_percent: float
) -> None:
    x = rehab_bounce_dilution(sent=sent, hard_bounces=hard, target_percent=target_percent)
    target = Fraction(str(target_percent)) / 100

    def enough(extra: int) -> bool:
        total = sent + extra
        return hard == 0 or (total > 0 and Fraction(hard, total) <= target)

    assert x >= 0
    assert enough(x)
    assert x == 0 or not enough(x - 1)


rates = st.sampled_from([0.0, 0.1, 0.25, 0.3, 0.5, 0.6, 0.75, 1.0])
BRUTE_LIMIT = 1500


@settings(deadline=None, max_examples=60)
@given(
    windows(min_sent=0, max_sent=300),
    rates,
    rates,
    st.sampled_from([60.0, 70.0, 72.0, 80.0, 90.0]),
)
def test_score_unlock_matches_a_brute_force_search(
    metrics: WindowMetrics, reply_rate: float, open_rate: float, target: float
) -> None:
    # Complaints can push the answer into the tens of thousands; keep the brute force cheap.
    metrics = WindowMetrics(
        metrics.sent,
        metrics.hard_bounces,
        min(metrics.complaints, 1),
        metrics.replies,
        metrics.unique_opens,
    )
    unlock = rehab_score_unlock(metrics, reply_rate=reply_rate, open_rate=open_rate, target=target)
    lower = max(0, MIN_SENT_FOR_SCORE - metrics.sent)

    def meets(x: int) -> bool:
        return score_after_clean(metrics, x, reply_rate, open_rate) >= target

    brute = next((x for x in range(lower, BRUTE_LIMIT + 1) if meets(x)), None)
    if brute is not None:
        assert unlock.messages == brute
        assert unlock.reachable
    elif unlock.reachable:
        assert unlock.messages > BRUTE_LIMIT
        assert meets(unlock.messages)
        assert not meets(unlock.messages - 1)
    else:
        assert unlock.messages is None
        assert unlock.reason


@settings(deadline=None)
@given(windows(min_sent=0, max_sent=20_000), rates, rates, st.floats(50, 99))
def test_score_unlock_is_minimal_and_correct(
    metrics: WindowMetrics, reply_rate: float, open_rate: float, target: float
) -> None:
    unlock = rehab_score_unlock(metrics, reply_rate=reply_rate, open_rate=open_rate, target=target)
    lower = max(0, MIN_SENT_FOR_SCORE - metrics.sent)
    if unlock.reachable:
        x = unlock.messages
        assert x is not None
        assert x >= lower
        assert score_after_clean(metrics, x, reply_rate, open_rate) >= target
        assert x == lower or score_after_clean(metrics, x - 1, reply_rate, open_rate) < target
        assert unlock.reason == ""
    else:
        assert unlock.messages is None
        assert unlock.reason
        assert unlock.limit_score <= target


@given(windows(min_sent=0, max_sent=2000), st.floats(50, 99))
def test_score_unlock_without_engagement_says_why_it_cannot_reach(
    metrics: WindowMetrics, target: float
) -> None:
    unlock = rehab_score_unlock(metrics, reply_rate=0, open_rate=0, target=target)
    assert unlock.limit_score == 50
    if not unlock.reachable:
        assert unlock.messages is None
        assert "tops out at 50" in unlock.reason
    else:
        # Only the window's own engagement can carry T over the target, before it dilutes.
        x = unlock.messages
        assert score_after_clean(metrics, x, 0, 0) >= target
        assert x == max(0, MIN_SENT_FOR_SCORE - metrics.sent) or (
            score_after_clean(metrics, x - 1, 0, 0) < target
        )


@given(windows(min_sent=MIN_SENT_FOR_SCORE, max_sent=2000))
def test_adding_no_clean_messages_gives_the_current_score(metrics: WindowMetrics) -> None:
    exact = score_after_clean(metrics, 0)
    assert trust_score(metrics, verified=True).value == pytest.approx(exact, abs=0.005)
