import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaigns.protection import LOOKBACK, bounce_allowance, bounce_verdict


def test_it_trips_above_the_line_and_not_at_it():
    assert bounce_allowance() == 2
    assert not bounce_verdict(sends=100, hard_bounces=2).trips
    tripped = bounce_verdict(sends=100, hard_bounces=3)
    assert tripped.trips
    assert "3 hard bounces in the last 100" in tripped.reason
    assert "Bounce protection" in tripped.reason


def test_it_trips_early_when_the_bounces_already_exceed_a_full_look_back():
    assert bounce_verdict(sends=40, hard_bounces=3).trips
    assert not bounce_verdict(sends=3, hard_bounces=2).trips


@pytest.mark.parametrize(("sends", "bounces"), [(-1, 0), (10, -1), (10, 11), (LOOKBACK + 1, 0)])
def test_it_refuses_counts_that_cannot_be(sends, bounces):
    with pytest.raises(ValueError):
        bounce_verdict(sends=sends, hard_bounces=bounces)


@given(
    sends=st.integers(0, LOOKBACK),
    bounces=st.integers(0, LOOKBACK),
    more=st.integers(0, LOOKBACK),
    percent=st.floats(0.5, 10),
)
def test_more_bounces_never_untrip_it(sends, bounces, more, percent):
    bounces = min(bounces, sends)
    worse = min(bounces + more, sends)
    first = bounce_verdict(sends=sends, hard_bounces=bounces, warning_percent=percent)
    second = bounce_verdict(sends=sends, hard_bounces=worse, warning_percent=percent)
    assert second.trips >= first.trips
    assert first.trips == (bounces > int(LOOKBACK * percent / 100))
