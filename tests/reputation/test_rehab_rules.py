"""The rehabilitation meter's rules (docs/rehabilitation.md): examples and properties."""

from datetime import UTC, datetime
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from reputation.rehab import (
    RehabMeter,
    RehabRules,
    RehabState,
    rehab_meter,
    rehab_percent,
    rehab_state,
)
from reputation.scoring import MIN_SENT_FOR_SCORE, Tier, WindowMetrics
from tests.reputation.test_scoring import windows

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
BEGAN = datetime(2026, 11, 3, 9, tzinfo=UTC)
RULES = RehabRules()


def demoted(window: WindowMetrics, *, done: int = 0, start: WindowMetrics | None = None, **kw):
    return rehab_meter(
        RehabState.REHAB, window=window, rules=kw.pop("rules", RULES), now=NOW, done=done,
        since=BEGAN, start=start, **kw,
    )  # fmt: skip


def text(meter: RehabMeter) -> str:
    return f"{meter.summary} {meter.explanation}"


# Rates in twentieths: 20 clean messages then bring whole numbers of replies and opens, so a
# window can take exactly the engagement the rules count on.
twentieths = st.integers(0, 20).map(lambda n: n / 20)


def with_clean(window: WindowMetrics, k: int, rules: RehabRules) -> WindowMetrics:
    replies = Fraction(str(rules.reply_rate)) * k
    opens = Fraction(str(rules.open_rate)) * k
    assert replies.denominator == opens.denominator == 1
    return WindowMetrics(
        sent=window.sent + k,
        hard_bounces=window.hard_bounces,
        complaints=window.complaints,
        replies=window.replies + int(replies),
        unique_opens=window.unique_opens + int(opens),
    )


# Which case


def test_it_tells_the_cases_apart() -> None:
    def state(tier: str, scored: bool = True, provisional: bool = False, cooldown: bool = False):
        return rehab_state(tier=tier, scored=scored, provisional=provisional, cooldown=cooldown)

    assert state(Tier.REHAB, provisional=True) == RehabState.NEW
    assert state(Tier.REHAB) == RehabState.REHAB
    assert state(Tier.REHAB, cooldown=True) == RehabState.COOLDOWN
    assert state(Tier.REHAB, scored=False) == RehabState.UNVERIFIED
    assert state(Tier.QUARANTINE, provisional=True) == RehabState.QUARANTINE
    assert state(Tier.STANDARD) == state(Tier.PREMIUM) == RehabState.NOT_NEEDED


# A new domain


def test_it_shows_a_new_domain_the_messages_to_a_first_score() -> None:
    meter = rehab_meter(RehabState.NEW, window=WindowMetrics(6), rules=RULES, now=NOW)
    assert (meter.done, meter.remaining, meter.percent) == (6, 14, 30)
    assert meter.summary == "14 more messages to get a first score."
    assert "sent 6" in meter.explanation and "72 or more" in meter.explanation
    assert meter.unlock is None


def test_it_says_again_when_a_scored_domain_fell_back_under_twenty_messages() -> None:
    meter = rehab_meter(
        RehabState.NEW, window=WindowMetrics(19), rules=RULES, now=NOW, first_score=False
    )
    assert meter.summary == "1 more message to get a score again."


def test_it_shows_a_brand_new_domain_at_zero_of_twenty() -> None:
    meter = rehab_meter(RehabState.NEW, window=WindowMetrics(), rules=RULES, now=NOW)
    assert (meter.done, meter.remaining, meter.percent) == (0, 20, 0)


# A demoted domain


def test_it_counts_what_is_done_and_what_remains_since_the_demotion() -> None:
    start = WindowMetrics(100, 5)
    before = demoted(start, start=start)
    assert (before.done, before.remaining, before.percent) == (0, 256, 0)
    # 40 clean warm-up messages with the network's engagement: 10 replies, 24 opens.
    after = demoted(WindowMetrics(140, 5, 0, 10, 24), done=40, start=start)
    assert (after.done, after.remaining, after.percent) == (40, 216, 15)
    assert after.summary == (
        "40 clean warm-up messages done since rehabilitation began on 3 Nov; 216 more needed now."
    )
    assert "5 hard bounces (3.57 % of sent, costing 35.7 points)" in after.explanation
    assert "25 % replies and 60 % opens" in after.explanation
    assert "That is" not in after.explanation  # nothing unexpected moved the number
    assert after.bounce_dilution == 360


def test_it_explains_a_number_that_rose_because_the_mail_earned_no_engagement() -> None:
    start = WindowMetrics(100, 5)
    after = demoted(WindowMetrics(140, 5), done=40, start=start)
    assert (after.done, after.remaining, after.percent) == (40, 288, 12)
    assert (
        "That is 72 more than the 256 needed when rehabilitation began less the 40 done, because "
        "the 40 messages that joined the window brought 0 replies and 0 opens where the count "
        "assumes 10 and 24."
    ) in after.explanation


def test_it_names_new_bounces_and_mail_that_is_not_counted_as_done() -> None:
    start = WindowMetrics(600, 37, 0, 9, 115)
    after = demoted(WindowMetrics(1000, 45, 0, 20, 150), done=100, start=start)
    assert after.remaining is not None and after.remaining > 1641 - 100
    assert "because 8 new hard bounces and the 400 messages" in after.explanation
    assert "At least 300 other messages joined the window since then" in after.explanation


def test_it_blames_the_ageing_window_when_counts_fell() -> None:
    start = WindowMetrics(600, 10, 0, 200, 400)
    after = demoted(WindowMetrics(300, 10, 0, 20, 100), done=0, start=start)
    assert "because older days left the window." in after.explanation


def test_it_never_shows_a_full_bar_while_a_message_remains() -> None:
    assert rehab_percent(9999, 1) == 99
    assert rehab_percent(0, 5) == 0
    assert rehab_percent(0, 0) == 100


def test_it_says_none_more_are_needed_when_the_window_already_reaches_the_gate() -> None:
    meter = demoted(WindowMetrics(1000, 0, 0, 300, 600), done=12)
    assert (meter.remaining, meter.percent) == (0, 100)
    assert "none more needed" in meter.summary


def test_it_says_plainly_when_the_target_is_unreachable_in_practice() -> None:
    meter = demoted(WindowMetrics(5000, 0, 40, 100, 1000), done=10)
    assert meter.remaining == 148_182 and meter.unlock is not None
    assert not meter.unlock.reachable
    assert "more than the 50,000 the platform treats as reachable" in meter.summary
    assert meter.explanation.startswith(
        "Unreachable in practice: the window's 40 complaints weigh too much. Rather than warming "
        "on, wait"
    )
    assert meter.percent == 0


def test_it_says_when_no_number_of_messages_reaches_the_gate() -> None:
    rules = RehabRules(reply_rate=0.05, open_rate=0.30)
    meter = demoted(WindowMetrics(100, 5), done=3, rules=rules)
    assert (meter.remaining, meter.percent) == (None, None)
    assert "no number of clean warm-up messages reaches 72 now" in meter.summary
    assert "tops out at 63.5" in meter.explanation and "contact support" in meter.explanation


def test_it_shows_a_cool_down_whose_score_already_clears_the_gate_without_a_bar() -> None:
    meter = rehab_meter(
        RehabState.COOLDOWN,
        window=WindowMetrics(1000, 0, 0, 300, 600),
        rules=RULES,
        now=NOW,
        since=BEGAN,
        cooldown_until=datetime(2027, 1, 4, tzinfo=UTC),
    )
    assert (meter.remaining, meter.percent) == (0, None)
    assert meter.summary.startswith("In cool-down until 4 Jan 2027: the score already reaches 72")


def test_it_has_nothing_to_count_for_unverified_quarantined_or_healthy_domains() -> None:
    for state in (RehabState.UNVERIFIED, RehabState.QUARANTINE):
        meter = rehab_meter(state, window=WindowMetrics(100, 5), rules=RULES, now=NOW)
        assert (meter.remaining, meter.percent) == (None, None) and meter.summary
    healthy = rehab_meter(RehabState.NOT_NEEDED, window=WindowMetrics(), rules=RULES, now=NOW)
    assert (healthy.remaining, healthy.percent, healthy.summary) == (0, None, "")


# Properties


@settings(deadline=None)
@given(windows(max_complaints=50), st.integers(0, 100_000), twentieths, twentieths, st.booleans())
def test_the_numbers_agree_with_each_other(
    window: WindowMetrics, done: int, reply_rate: float, open_rate: float, cooling: bool
) -> None:
    rules = RehabRules(reply_rate=reply_rate, open_rate=open_rate)
    state = RehabState.COOLDOWN if cooling else RehabState.REHAB
    meter = rehab_meter(state, window=window, rules=rules, now=NOW, done=done, since=BEGAN)
    assert meter.done == done
    if meter.remaining is None:
        assert meter.percent is None
        return
    assert meter.remaining >= 0
    if meter.remaining > 0:
        assert meter.percent == 100 * done // (done + meter.remaining)
        assert 0 <= meter.percent < 100
        assert f"{done:,} clean warm-up message" in meter.summary
        assert f"{meter.remaining:,} more needed now" in meter.summary
    else:
        assert meter.percent in (100, None)
        assert "0 of 0" not in text(meter)


@settings(deadline=None)
@given(windows(max_complaints=50), st.integers(1, 60), st.integers(0, 5000), twentieths, twentieths)
def test_clean_messages_never_raise_what_remains(
    window: WindowMetrics, batches: int, done: int, reply_rate: float, open_rate: float
) -> None:
    rules = RehabRules(reply_rate=reply_rate, open_rate=open_rate)
    k = 20 * batches
    before = demoted(window, done=done, rules=rules)
    after = demoted(with_clean(window, k, rules), done=done + k, rules=rules)
    # Measured from the window as it was before them, the k messages explain themselves.
    since_then = demoted(with_clean(window, k, rules), done=k, start=window, rules=rules)
    if before.remaining is None:
        assert after.remaining is None
        return
    if k <= before.remaining:
        assert after.remaining is not None
        # Every clean message is one fewer to go: done + remaining holds still, the bar moves.
        assert after.remaining == before.remaining - k
        assert after.remaining <= before.remaining
        assert after.percent is not None and before.percent is not None
        assert after.percent >= before.percent
        assert "That is" not in since_then.explanation
    else:
        # Past the target the domain is back already (promoted when it got there); with an
        # engagement below the target's, more messages would only pull the score down again.
        assert after.remaining is None or after.remaining >= 0


@given(
    windows(max_complaints=50, min_sent=0, max_sent=MIN_SENT_FOR_SCORE - 1),
    st.sampled_from(list(Tier)),
    st.booleans(),
    st.booleans(),
)
def test_a_new_domain_is_never_described_as_a_rehabilitation_case(
    window: WindowMetrics, tier: Tier, cooldown: bool, first_score: bool
) -> None:
    state = rehab_state(tier=tier, scored=True, provisional=True, cooldown=cooldown)
    assert state in (RehabState.NEW, RehabState.QUARANTINE)
    meter = rehab_meter(
        state,
        window=window,
        rules=RULES,
        now=NOW,
        first_score=first_score,
        cooldown_until=NOW if cooldown else None,
    )
    assert "rehab" not in text(meter).lower() and "demot" not in text(meter).lower()
    if state == RehabState.NEW:
        assert meter.done + (meter.remaining or 0) == MIN_SENT_FOR_SCORE
        assert meter.percent is not None and 0 <= meter.percent < 100


@given(
    windows(max_complaints=50, min_sent=0),
    st.integers(0, 10_000),
    st.sampled_from(list(RehabState)),
)
def test_remaining_is_never_negative(window: WindowMetrics, done: int, state: RehabState) -> None:
    meter = rehab_meter(state, window=window, rules=RULES, now=NOW, done=done, since=BEGAN)
    assert meter.remaining is None or meter.remaining >= 0
    assert meter.percent is None or 0 <= meter.percent <= 100
    if meter.remaining:
        assert meter.percent is None or meter.percent < 100
