"""When a campaign may send: its sending window, public holidays and time zones. Pure: no Django.

A window is a set of local weekdays (0 = Monday), a local start and end time ([start, end)) and a
holiday calendar. "Local" means the lead's time zone when the campaign follows the lead's zone,
otherwise the campaign's. Daylight-saving changes are handled on real instants: a start time that
does not exist on a spring-forward day opens the window at the first moment after the gap, and a
repeated hour on a fall-back day counts both times it is on the clock.
"""

import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from holidays import registry as holiday_registry

# A window that finds no sending day within this many days never will (all days holidays,
# or a calendar gone wrong); refusing beats looping forever.
SEARCH_DAYS = 400
WEEKDAYS = frozenset(range(7))
# A day's clock changes (DST, zone redefinitions) are searched for this far either side of it.
_TRANSITION_MARGIN = timedelta(hours=3)


def _in_window(
    moment: datetime,
    *,
    zone: ZoneInfo,
    days: frozenset[int],
    start: time,
    end: time,
    is_holiday: Callable[[date], bool],
) -> bool:
    local = moment.astimezone(zone)
    return local.weekday() in days and start <= local.time() < end and not is_holiday(local.date())


def _clock_change(day: date, zone: ZoneInfo) -> datetime | None:
    """The first instant (to the second) of a new UTC offset around `day`, if the clock changes."""
    low = datetime.combine(day, time(0), zone).astimezone(UTC) - _TRANSITION_MARGIN
    high = datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    high += _TRANSITION_MARGIN
    if low.astimezone(zone).utcoffset() == high.astimezone(zone).utcoffset():
        return None
    before = low.astimezone(zone).utcoffset()
    # Invariant: `low` has the old offset, `high` does not; narrow down to one second.
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if middle <= low:
            middle = low + timedelta(seconds=1)
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high


def next_send_at(
    *,
    now: datetime,
    zone: ZoneInfo,
    days: frozenset[int],
    start: time,
    end: time,
    is_holiday: Callable[[date], bool],
) -> datetime:
    """The earliest moment at or after `now` inside the sending window, in UTC."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware.")
    days = frozenset(days) & WEEKDAYS
    if not days:
        raise ValueError("The sending window has no sending days.")
    if start >= end:
        raise ValueError("The sending window must start before it ends.")

    def inside(moment: datetime) -> bool:
        return _in_window(moment, zone=zone, days=days, start=start, end=end, is_holiday=is_holiday)

    if inside(now):
        return now.astimezone(UTC)
    first_day = now.astimezone(zone).date()
    for offset in range(SEARCH_DAYS):
        day = first_day + timedelta(days=offset)
        if day.weekday() not in days or is_holiday(day):
            continue
        # The window opens on this day either when the clock reads `start` (once, or twice in a
        # repeated hour) or when a clock change jumps into the window (a skipped start time).
        candidates = [
            datetime.combine(day, start, zone).replace(fold=fold).astimezone(UTC) for fold in (0, 1)
        ]
        change = _clock_change(day, zone)
        if change is not None:
            candidates.append(change)
        opening = [
            moment
            for moment in candidates
            if moment >= now and moment.astimezone(zone).date() == day and inside(moment)
        ]
        if opening:
            return min(opening)
    raise ValueError("The sending window has no sending day in the next year.")


def _never_a_holiday(day: date) -> bool:
    return False


@lru_cache(maxsize=512)
def _country_calendar(country: str, years: tuple[int, ...]) -> holidays.HolidayBase:
    # Without years the calendar fills in each year the first time a date in it is asked about.
    return holidays.country_holidays(country, years=years or None)


def holiday_calendar(country: str, years: Iterable[int] | None = None) -> Callable[[date], bool]:
    """A test for public holidays in `country` (ISO 3166 alpha-2; "" means no holidays)."""
    code = country.strip().upper()
    if not code:
        return _never_a_holiday
    if code not in _COUNTRY_NAMES:
        raise ValueError(f"{country!r} is not a country we have a public holiday calendar for.")
    calendar = _country_calendar(code, tuple(sorted(set(years or ()))))

    def is_holiday(day: date) -> bool:
        return day in calendar

    return is_holiday


def _english_name(class_name: str) -> str:
    # "BosniaAndHerzegovina" -> "Bosnia and Herzegovina"; "McDonald" stays one word.
    words = re.split(r"(?<=[a-z])(?<!Mc)(?=[A-Z])", class_name)
    small = {"And": "and", "Of": "of", "The": "the", "Da": "da"}
    return " ".join(small.get(word, word) if index else word for index, word in enumerate(words))


def _country_names() -> dict[str, str]:
    names = {entry[1]: _english_name(entry[0]) for entry in holiday_registry.COUNTRIES.values()}
    supported = holidays.list_supported_countries(include_aliases=False)
    return {code: names[code] for code in supported if code in names}


_COUNTRY_NAMES = _country_names()

# (code, English name) for a country picker, by name.
HOLIDAY_COUNTRIES: list[tuple[str, str]] = sorted(
    _COUNTRY_NAMES.items(), key=lambda item: (item[1], item[0])
)


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zone_for(*, lead_zone: str, campaign_zone: str, use_lead_zone: bool) -> ZoneInfo:
    """The zone a lead's window is read in: the lead's when used and known, else the campaign's."""
    if use_lead_zone and lead_zone.strip():
        lead = _zone(lead_zone.strip())
        if lead is not None:
            return lead
    if not campaign_zone.strip():
        return ZoneInfo("UTC")
    campaign = _zone(campaign_zone.strip())
    if campaign is None:
        raise ValueError(f"{campaign_zone!r} is not a time zone we know.")
    return campaign
