"""Sending windows, holidays and time zones (pure: no database)."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.window import (
    HOLIDAY_COUNTRIES,
    holiday_calendar,
    next_send_at,
    zone_for,
)

NEW_YORK = ZoneInfo("America/New_York")
EVERY_DAY = frozenset(range(7))
WEEKDAYS = frozenset(range(5))


def never(day: date) -> bool:
    return False


# Zones with DST in either hemisphere, half-hour DST (Lord Howe), historic midnight changes
# (Sao Paulo, Santiago), odd offsets (Chatham, Kolkata) and none at all.
ZONES = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "America/Sao_Paulo",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "Asia/Tehran",
]


def inside(
    moment: datetime,
    *,
    zone: ZoneInfo,
    days: frozenset[int],
    start: time,
    end: time,
    holidays: frozenset[date],
) -> bool:
    local = moment.astimezone(zone)
    return local.weekday() in days and start <= local.time() < end and local.date() not in holidays


# Days a zone's clocks change (forward, then back), so examples land on DST edges often.
CLOCK_CHANGES = [
    ("America/New_York", date(2026, 3, 8)),
    ("America/New_York", date(2026, 11, 1)),
    ("Europe/Berlin", date(2026, 3, 29)),
    ("Europe/Berlin", date(2026, 10, 25)),
    ("America/Sao_Paulo", date(2018, 11, 4)),  # at midnight: that day starts at 01:00
    ("America/Sao_Paulo", date(2019, 2, 16)),
    ("Australia/Lord_Howe", date(2026, 10, 4)),  # half an hour
    ("Australia/Lord_Howe", date(2026, 4, 5)),
    ("America/Santiago", date(2026, 9, 6)),
    ("America/Santiago", date(2026, 4, 4)),
]


@st.composite
def near_clock_change(draw: st.DrawFn) -> tuple[datetime, str]:
    name, day = draw(st.sampled_from(CLOCK_CHANGES))
    midnight = datetime.combine(day, time(0), ZoneInfo(name)).astimezone(UTC)
    return midnight + timedelta(minutes=draw(st.integers(-12 * 60, 36 * 60))), name


@st.composite
def anywhere(draw: st.DrawFn) -> tuple[datetime, str]:
    now = draw(
        st.datetimes(
            min_value=datetime(2015, 1, 1),  # noqa: DTZ001 (hypothesis takes naive bounds)
            max_value=datetime(2030, 12, 31),  # noqa: DTZ001
            timezones=st.just(UTC),
        )
    )
    return now, draw(st.sampled_from(ZONES))


@st.composite
def windows(draw: st.DrawFn) -> dict[str, Any]:
    now, zone_name = draw(st.one_of(anywhere(), near_clock_change()))
    zone = ZoneInfo(zone_name)
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    minutes = st.one_of(st.integers(0, 24 * 60), st.sampled_from([0, 30, 60, 90, 120, 150, 180]))
    first, second = sorted(draw(st.lists(minutes, min_size=2, max_size=2, unique=True)))
    start = time(*divmod(first, 60))
    end = time(23, 59, 59, 999999) if second == 24 * 60 else time(*divmod(second, 60))
    today = now.astimezone(zone).date()
    holidays = frozenset(
        today + timedelta(days=offset)
        for offset in draw(st.frozensets(st.integers(0, 14), max_size=6))
    )
    return {
        "now": now,
        "zone": zone,
        "days": days,
        "start": start,
        "end": end,
        "holidays": holidays,
    }


@settings(max_examples=150)
@given(window=windows())
def test_it_finds_the_earliest_moment_inside_the_window(window):
    holidays = window.pop("holidays")
    now = window["now"]
    result = next_send_at(**window, is_holiday=holidays.__contains__)
    in_window: dict[str, Any] = {key: value for key, value in window.items() if key != "now"}

    assert result.tzinfo is UTC
    assert result >= now
    assert inside(result, **in_window, holidays=holidays)
    assert result.astimezone(window["zone"]).date() not in holidays
    if result > now:
        # Nothing earlier: not the second before, nor any point of a coarse grid since `now`.
        assert not inside(result - timedelta(seconds=1), **in_window, holidays=holidays)
        moment = now
        while moment < result:
            assert not inside(moment, **in_window, holidays=holidays)
            moment += timedelta(minutes=20)


@settings(max_examples=50)
@given(window=windows())
def test_it_returns_now_when_now_is_inside(window):
    holidays = window.pop("holidays")
    first = next_send_at(**window, is_holiday=holidays.__contains__)
    window["now"] = first
    assert next_send_at(**window, is_holiday=holidays.__contains__) == first


def test_it_opens_at_the_first_valid_moment_when_the_start_time_does_not_exist():
    # 2026-03-08: New York clocks jump from 02:00 EST to 03:00 EDT, so 02:30 never happens.
    result = next_send_at(
        now=datetime(2026, 3, 8, 5, 0, tzinfo=UTC),  # midnight EST
        zone=NEW_YORK,
        days=EVERY_DAY,
        start=time(2, 30),
        end=time(5, 0),
        is_holiday=never,
    )
    assert result == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 03:00 EDT
    assert result.astimezone(NEW_YORK).time() == time(3, 0)


def test_it_uses_the_repeated_hour_when_clocks_go_back():
    # 2026-11-01: New York shows 01:00-02:00 twice; at 01:45 EDT the window 01:00-01:30 is
    # still to come, at 01:00 EST.
    result = next_send_at(
        now=datetime(2026, 11, 1, 5, 45, tzinfo=UTC),
        zone=NEW_YORK,
        days=EVERY_DAY,
        start=time(1, 0),
        end=time(1, 30),
        is_holiday=never,
    )
    assert result == datetime(2026, 11, 1, 6, 0, tzinfo=UTC)


def test_it_skips_weekends_and_holidays():
    # Friday 25 December 2026 is Christmas in the US; the weekend follows.
    result = next_send_at(
        now=datetime(2026, 12, 25, 12, 0, tzinfo=UTC),
        zone=NEW_YORK,
        days=WEEKDAYS,
        start=time(9, 0),
        end=time(17, 0),
        is_holiday=holiday_calendar("US"),
    )
    assert result == datetime(2026, 12, 28, 14, 0, tzinfo=UTC)  # Monday 09:00 EST


def test_it_waits_for_the_window_to_open_and_moves_on_once_it_closed():
    kwargs: dict[str, Any] = {"zone": NEW_YORK, "days": WEEKDAYS, "start": time(9), "end": time(17)}
    tuesday_early = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # 07:00 EST
    tuesday_late = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)  # 17:00 EST: the end is excluded
    assert next_send_at(now=tuesday_early, **kwargs, is_holiday=never) == datetime(
        2026, 12, 1, 14, 0, tzinfo=UTC
    )
    assert next_send_at(now=tuesday_late, **kwargs, is_holiday=never) == datetime(
        2026, 12, 2, 14, 0, tzinfo=UTC
    )
    inside_now = datetime(2026, 12, 1, 15, 30, 12, tzinfo=UTC)
    assert next_send_at(now=inside_now, **kwargs, is_holiday=never) == inside_now


def test_it_refuses_windows_that_can_never_open():
    now = datetime(2026, 12, 1, tzinfo=UTC)
    common: dict[str, Any] = {"now": now, "zone": NEW_YORK, "is_holiday": never}
    with pytest.raises(ValueError, match="no sending days"):
        next_send_at(**common, days=frozenset(), start=time(9), end=time(17))
    with pytest.raises(ValueError, match="start before it ends"):
        next_send_at(**common, days=WEEKDAYS, start=time(17), end=time(9))
    with pytest.raises(ValueError, match="start before it ends"):
        next_send_at(**common, days=WEEKDAYS, start=time(9), end=time(9))
    with pytest.raises(ValueError, match="next year"):
        next_send_at(
            now=now,
            zone=NEW_YORK,
            days=WEEKDAYS,
            start=time(9),
            end=time(17),
            is_holiday=lambda day: True,
        )
    with pytest.raises(ValueError, match="timezone-aware"):
        next_send_at(
            now=datetime(2026, 12, 1),  # noqa: DTZ001 (the naive input under test)
            zone=NEW_YORK,
            days=WEEKDAYS,
            start=time(9),
            end=time(17),
            is_holiday=never,
        )


def test_it_reads_public_holidays_by_country():
    british = holiday_calendar("gb")
    assert british(date(2026, 12, 25))
    assert british(date(2026, 12, 28))  # Boxing Day falls on a Saturday; observed on Monday
    assert not british(date(2026, 12, 23))
    assert holiday_calendar("US", years=[2026])(date(2026, 7, 3))  # Independence Day observed
    assert not holiday_calendar("")(date(2026, 12, 25))


def test_it_refuses_an_unknown_country():
    with pytest.raises(ValueError, match="'ZZ' is not a country"):
        holiday_calendar("ZZ")


def test_it_lists_countries_by_english_name():
    codes = [code for code, _ in HOLIDAY_COUNTRIES]
    assert len(codes) == len(set(codes)) > 100
    assert ("US", "United States") in HOLIDAY_COUNTRIES
    assert ("BA", "Bosnia and Herzegovina") in HOLIDAY_COUNTRIES
    assert ("HM", "Heard Island and McDonald Islands") in HOLIDAY_COUNTRIES
    names = [name for _, name in HOLIDAY_COUNTRIES]
    assert names == sorted(names)
    assert all(len(code) == 2 for code in codes)
    for code in codes[:20]:
        holiday_calendar(code)  # every listed country is accepted


def test_it_picks_the_lead_zone_only_when_asked_and_known():
    def pick(lead: str, campaign: str, use: bool) -> str:
        return zone_for(lead_zone=lead, campaign_zone=campaign, use_lead_zone=use).key

    assert pick("Asia/Tokyo", "Europe/Paris", True) == "Asia/Tokyo"
    assert pick("Asia/Tokyo", "Europe/Paris", False) == "Europe/Paris"
    assert pick("", "Europe/Paris", True) == "Europe/Paris"
    assert pick("Mars/Olympus", "Europe/Paris", True) == "Europe/Paris"
    assert pick("../../etc/passwd", "Europe/Paris", True) == "Europe/Paris"
    assert pick("", "", True) == "UTC"
    with pytest.raises(ValueError, match="not a time zone"):
        pick("", "Mars/Olympus", True)
