"""The warm-up ramp and the working day (pure: no database)."""

import itertools
import random
from datetime import UTC, date, time, timedelta

from hypothesis import given
from hypothesis import strategies as st

from warming.schedule import (
    FIRST_DAYS_CAP,
    PREWARMED_CAP,
    MailboxWarming,
    day_rng,
    maintenance_volume,
    ramp_day,
    ramp_length,
    ramp_volume,
    randomised,
    send_times,
    today_volume,
    working_day,
)

MONDAY = date(2026, 11, 30)


def test_the_ramp_follows_the_rule_before_randomisation():
    ramp = [ramp_volume(day) for day in range(1, 15)]
    assert ramp[0] == 5 and ramp[6] == 10  # days 1 and 7: linear from 5 to 10
    assert ramp[7] == 12  # day 8: 10 * 1.2
    assert ramp[13] == 40  # day 14: the default target
    assert ramp == sorted(ramp)
    assert ramp_length() == 14
    assert ramp_volume(0) == 0


@given(day=st.integers(1, 60), target=st.integers(1, 500), prewarmed=st.booleans())
def test_the_ramp_never_breaks_its_caps(day, target, prewarmed):
    volume = ramp_volume(day, target=target, prewarmed=prewarmed)
    assert 1 <= volume <= min(max(target, 1), 50)
    if day <= 14:
        assert volume <= FIRST_DAYS_CAP
    if prewarmed:
        assert volume <= PREWARMED_CAP
    assert ramp_volume(day + 1, target=target, prewarmed=prewarmed) >= volume


def test_a_prewarmed_mailbox_starts_at_five_and_stays_at_thirty_or_less():
    ramp = [ramp_volume(day, target=50, prewarmed=True) for day in range(1, 40)]
    assert ramp[0] == 5 and max(ramp) == 30


@given(volume=st.integers(0, 500), cap=st.integers(0, 500), seed=st.integers())
def test_randomisation_stays_within_ten_percent_and_under_the_cap(volume, cap, seed):
    varied = randomised(volume, cap=cap, rng=random.Random(seed))
    if volume == 0 or cap == 0:
        assert varied == 0
    else:
        assert 1 <= varied <= cap
        assert varied <= volume * 1.1 + 1e-9
        assert varied >= min(cap, round(volume * 0.9) or 1) - 1


@given(
    start_offset=st.integers(0, 30),
    days=st.integers(0, 40),
    target=st.integers(1, 80),
    limit=st.integers(1, 80),
    prewarmed=st.booleans(),
    weekdays_only=st.booleans(),
)
def test_todays_figure_never_passes_a_cap_and_names_what_binds_it(
    start_offset, days, target, limit, prewarmed, weekdays_only
):
    start = MONDAY - timedelta(days=start_offset)
    mailbox = MailboxWarming(
        "m-1",
        start,
        target=target,
        daily_limit=limit,
        prewarmed=prewarmed,
        weekdays_only=weekdays_only,
    )
    today = start + timedelta(days=days)
    figure = today_volume(mailbox, today)
    assert figure.volume <= limit and figure.reason
    if weekdays_only and today.weekday() >= 5:
        assert figure.volume == 0 and "weekend" in figure.reason
    if prewarmed:
        assert figure.volume <= PREWARMED_CAP
    if days < 14:
        assert figure.volume <= FIRST_DAYS_CAP
    assert today_volume(mailbox, today) == figure  # the same answer all day


def test_a_paused_mailbox_sends_nothing_and_says_why():
    mailbox = MailboxWarming("m-1", MONDAY, paused_reason="the IMAP password was refused")
    figure = today_volume(mailbox, MONDAY + timedelta(days=3))
    assert figure.volume == 0 and "IMAP password" in figure.reason


def test_after_the_ramp_warm_up_continues_at_a_maintenance_level():
    mailbox = MailboxWarming("m-1", MONDAY, daily_limit=120, target=40)
    figure = today_volume(mailbox, MONDAY + timedelta(days=30))
    assert "maintenance" in figure.reason
    assert abs(figure.volume - maintenance_volume(120)) <= 2  # 12, varied by up to 10 %


def test_weekdays_only_counts_only_weekdays_as_ramp_days():
    assert ramp_day(MONDAY, MONDAY, weekdays_only=True) == 1
    assert ramp_day(MONDAY, MONDAY + timedelta(days=5), weekdays_only=True) == 0  # Saturday
    assert ramp_day(MONDAY, MONDAY + timedelta(days=7), weekdays_only=True) == 6  # next Monday
    assert ramp_day(MONDAY, MONDAY + timedelta(days=7), weekdays_only=False) == 8


@given(start_offset=st.integers(0, 20), length=st.integers(0, 40))
def test_weekday_ramp_days_equal_the_weekdays_counted_one_by_one(start_offset, length):
    start = MONDAY + timedelta(days=start_offset)
    today = start + timedelta(days=length)
    expected = sum(1 for i in range(length + 1) if (start + timedelta(days=i)).weekday() < 5)
    if today.weekday() >= 5:
        expected = 0
    assert ramp_day(start, today, weekdays_only=True) == expected


@given(key=st.text(min_size=1, max_size=12), offset=st.integers(0, 365), count=st.integers(0, 60))
def test_sends_are_spread_over_the_working_day_outside_lunch(key, offset, count):
    day = MONDAY + timedelta(days=offset)
    work = working_day(key, day, window=(time(8), time(18)), tz=UTC)
    assert work.start < work.lunch_start <= work.lunch_end < work.end
    moments = send_times(count, work, day_rng(key, day))
    assert len(moments) == count and moments == sorted(moments)
    for moment in moments:
        assert work.start <= moment <= work.end
        assert not work.lunch_start <= moment < work.lunch_end
    if count >= 2:
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(moments)]
        assert min(gaps) > 0  # no two at once


def test_a_mailbox_keeps_its_own_working_day_varied_a_little_between_days():
    days = [
        working_day("m-7", MONDAY + timedelta(days=i), window=(time(9), time(17)), tz=UTC)
        for i in range(10)
    ]
    starts = {d.start.time() for d in days}
    assert len(starts) > 1  # varied between days
    assert max(starts) <= time(10, 30)  # but always near the mailbox's usual start
    assert working_day("m-7", MONDAY, window=(time(9), time(17)), tz=UTC) == days[0]
    other = working_day("m-8", MONDAY, window=(time(9), time(17)), tz=UTC)
    assert other != days[0]
