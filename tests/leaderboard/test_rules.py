"""The board's pure rules: board score, ranking floor, the tie-breaking sort key, badges."""

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from leaderboard.badges import (
    Facts,
    TierStep,
    badges,
    completed_rehabilitation,
    external_streak_start,
    streak_days,
)
from leaderboard.ranking import (
    RANKED_FLOOR,
    DomainVolume,
    board_score,
    gained,
    histogram,
    is_ranked,
    score_of,
    sort_key,
    to_go,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
scores = st.floats(min_value=0, max_value=100, allow_nan=False)
moments = st.datetimes(
    min_value=datetime(2020, 1, 1, tzinfo=UTC).replace(tzinfo=None),
    max_value=datetime(2100, 1, 1, tzinfo=UTC).replace(tzinfo=None),
    timezones=st.just(UTC),
)


def test_the_board_score_is_weighted_by_what_each_domain_sent():
    domains = [DomainVolume(90.0, 300), DomainVolume(60.0, 100), DomainVolume(None, 5000)]
    assert board_score(domains) == 82.5
    assert board_score([DomainVolume(80.0, 0)]) is None
    assert board_score([]) is None


@given(st.lists(st.tuples(scores, st.integers(min_value=1, max_value=10**6)), min_size=1))
def test_the_board_score_lies_between_the_lowest_and_highest_domain(rows):
    result = board_score(DomainVolume(s, n) for s, n in rows)
    assert result is not None
    assert min(s for s, _ in rows) - 0.01 <= result <= max(s for s, _ in rows) + 0.01


def test_only_workspaces_past_the_floor_with_a_score_are_ranked():
    assert not is_ranked(score=95.0, external_sent=RANKED_FLOOR - 1)
    assert is_ranked(score=95.0, external_sent=RANKED_FLOOR)
    assert not is_ranked(score=None, external_sent=10_000)
    assert (to_go(150), to_go(250)) == (50, 0)


@given(scores, moments, scores, moments)
def test_the_sort_key_orders_by_score_then_earlier_joiner(a, joined_a, b, joined_b):
    ka, kb = sort_key(a, joined_a), sort_key(b, joined_b)
    ra, rb = round(a, 2), round(b, 2)
    ja, jb = int(joined_a.timestamp()), int(joined_b.timestamp())
    if ra != rb:
        assert (ka > kb) == (ra > rb)
    elif ja != jb:
        assert (ka > kb) == (ja < jb)
    else:
        assert ka == kb
    assert abs(score_of(ka) - ra) < 1e-9
    assert ka == int(ka) and ka < 2**53  # exact in a double, as Redis stores it


def test_season_gain_and_histogram():
    assert gained(72.5, 60.0) == 12.5 and gained(None, 60.0) is None
    assert histogram([0, 9.99, 10, 55, 100, 100]) == [2, 1, 0, 0, 0, 1, 0, 0, 0, 2]


def steps(*pairs, provisional=()):
    return [TierStep(T0 + timedelta(days=day), tier, day in provisional) for day, tier in pairs]


def test_a_streak_starts_when_the_domain_last_entered_an_external_tier():
    history = steps((0, "standard"), (3, "rehab"), (5, "standard"), (9, "premium"))
    assert external_streak_start(history) == T0 + timedelta(days=5)
    assert external_streak_start(steps((0, "premium"), (2, "rehab"))) is None
    now = T0 + timedelta(days=40)
    assert streak_days([T0 + timedelta(days=5), None, T0 + timedelta(days=30)], now) == 35


@given(st.lists(st.sampled_from(["premium", "standard", "rehab", "quarantine"]), max_size=30))
def test_the_streak_start_is_the_first_of_the_final_external_run(tiers):
    history = steps(*enumerate(tiers))
    start = external_streak_start(history)
    if not tiers or tiers[-1] not in ("premium", "standard"):
        assert start is None
    else:
        first = len(tiers) - 1
        while first > 0 and tiers[first - 1] in ("premium", "standard"):
            first -= 1
        assert start == history[first].at


def test_rehabilitation_counts_as_completed_only_on_real_scores():
    assert completed_rehabilitation(steps((0, "rehab"), (20, "standard")))
    assert not completed_rehabilitation(steps((0, "rehab"), (20, "standard"), provisional=(20,)))
    assert not completed_rehabilitation(steps((0, "rehab"), (20, "standard"), provisional=(0,)))
    assert not completed_rehabilitation(steps((0, "standard"), (20, "rehab")))


def test_badges_follow_the_facts():
    today = date(2026, 12, 1)
    none = Facts(0, None, None, 0, False)
    assert badges(none, today) == []
    facts = Facts(
        streak_days=31,
        first_verified=date(2026, 9, 1),
        last_complaint=date(2026, 10, 30),
        sent_external=500,
        rehab_completed=True,
    )
    codes = [b.code for b in badges(facts, today)]
    assert codes == ["first_domain", "streak_7", "streak_30", "clean_30", "rehab_graduate"]
    recent = Facts(3, date(2026, 9, 1), date(2026, 11, 20), 500, False)
    assert [b.code for b in badges(recent, today)] == ["first_domain"]
    idle = Facts(3, date(2026, 9, 1), None, 0, False)  # nothing sent: nothing to be clean of
    assert [b.code for b in badges(idle, today)] == ["first_domain"]
