"""The warm-up ramp of one mailbox and the shape of its working day. Pure: no Django.

The ramp (docs/warming.md): a new mailbox sends 5 warm-up messages on day 1, rising linearly to
10 on day 7; from day 8 each day is the previous one times 1.2, rounded up, until the target
(default 40, at most 50). No mailbox sends more than 50 a day in its first 14 days. A pre-warmed
(imported) mailbox starts at 5 too but grows by 1.2 from day 2 and stays at or below 30 while
warming. After the ramp, warm-up continues at a maintenance level (10 % of the mailbox's daily
volume). Each day's figure is varied by up to 10 % either way, never past a cap. Ramp days count
only the days the mailbox sends (weekdays, if it warms on weekdays only).
"""

import math
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

RAMP_START = 5
RAMP_LINEAR_END = 10
LINEAR_DAYS = 7
GROWTH = 1.2
DEFAULT_TARGET = 40
MAX_TARGET = 50
FIRST_DAYS = 14
FIRST_DAYS_CAP = 50
PREWARMED_CAP = 30
MAINTENANCE_SHARE = 0.10
JITTER = 0.10
LUNCH_MINUTES = (30, 60)


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def target_for(target: int, *, prewarmed: bool) -> int:
    """The volume a ramp aims for: the mailbox's target within the rules' caps."""
    capped = max(1, min(target, MAX_TARGET))
    return min(capped, PREWARMED_CAP) if prewarmed else capped


def ramp_volume(day: int, *, target: int = DEFAULT_TARGET, prewarmed: bool = False) -> int:
    """Warm-up messages on ramp day `day` (1 = the first sending day), before randomisation."""
    if day < 1:
        return 0
    aim = target_for(target, prewarmed=prewarmed)
    if prewarmed:
        volume = RAMP_START
        for _ in range(day - 1):
            volume = math.ceil(volume * GROWTH)
            if volume >= aim:
                break
    elif day <= LINEAR_DAYS:
        step = (RAMP_LINEAR_END - RAMP_START) / (LINEAR_DAYS - 1)
        volume = _round_half_up(RAMP_START + (day - 1) * step)
    else:
        volume = RAMP_LINEAR_END
        for _ in range(day - LINEAR_DAYS):
            volume = math.ceil(volume * GROWTH)
            if volume >= aim:
                break
    volume = min(volume, aim)
    return min(volume, FIRST_DAYS_CAP) if day <= FIRST_DAYS else volume


def ramp_length(*, target: int = DEFAULT_TARGET, prewarmed: bool = False) -> int:
    """The first ramp day at which the mailbox reaches its target."""
    aim = target_for(target, prewarmed=prewarmed)
    day = 1
    while ramp_volume(day, target=target, prewarmed=prewarmed) < aim:
        day += 1
    return day


def maintenance_volume(daily_volume: int, *, share: float = MAINTENANCE_SHARE) -> int:
    """Warm-up messages a day once the ramp is over: a share of the mailbox's daily volume."""
    return max(1, math.ceil(daily_volume * share)) if daily_volume > 0 else 0


def is_sending_day(day: date, *, weekdays_only: bool) -> bool:
    return not weekdays_only or day.weekday() < 5


def ramp_day(start: date, today: date, *, weekdays_only: bool) -> int:
    """Which ramp day `today` is for a mailbox enrolled on `start` (0: not a sending day, or not
    started); only sending days count."""
    if today < start or not is_sending_day(today, weekdays_only=weekdays_only):
        return 0
    days = (today - start).days + 1
    if not weekdays_only:
        return days
    weeks, rest = divmod(days, 7)
    counted = weeks * 5
    for offset in range(rest):
        if is_sending_day(start + timedelta(days=weeks * 7 + offset), weekdays_only=True):
            counted += 1
    return counted


def day_rng(key: str, day: date) -> random.Random:
    """A generator that is the same for one mailbox and day, and differs between them."""
    return random.Random(f"{key}:{day.isoformat()}")


def randomised(volume: int, *, cap: int, rng: random.Random, jitter: float = JITTER) -> int:
    """`volume` varied by up to `jitter` either way, at least 1 if it was not 0, never above
    `cap`."""
    if volume <= 0 or cap <= 0:
        return 0
    varied = _round_half_up(volume * (1 + rng.uniform(-jitter, jitter)))
    return max(1, min(varied, cap, math.floor(volume * (1 + jitter))))


@dataclass(frozen=True)
class Today:
    """The one figure a customer sees for a mailbox today, and what sets it."""

    volume: int
    reason: str


@dataclass(frozen=True)
class MailboxWarming:
    """What the ramp needs to know about one mailbox."""

    key: str  # stable and unique per mailbox (its id), seeds its randomness
    started_on: date
    target: int = DEFAULT_TARGET
    daily_limit: int = DEFAULT_TARGET
    prewarmed: bool = False
    weekdays_only: bool = False
    paused_reason: str = ""  # why warm-up is stopped (paused, cool-down), empty if it is not


def today_volume(mailbox: MailboxWarming, today: date) -> Today:
    """Today's warm-up messages for a mailbox and the constraint that binds them."""
    if mailbox.paused_reason:
        return Today(0, f"paused: {mailbox.paused_reason}")
    if today < mailbox.started_on:
        return Today(0, f"warm-up starts on {mailbox.started_on.isoformat()}")
    day = ramp_day(mailbox.started_on, today, weekdays_only=mailbox.weekdays_only)
    if day == 0:
        return Today(0, "weekdays only: no warm-up at the weekend")
    length = ramp_length(target=mailbox.target, prewarmed=mailbox.prewarmed)
    if day > length:
        planned = maintenance_volume(mailbox.daily_limit)
        reason = f"ramp complete: maintenance at {int(MAINTENANCE_SHARE * 100)} % of daily volume"
    else:
        planned = ramp_volume(day, target=mailbox.target, prewarmed=mailbox.prewarmed)
        reason = f"ramp day {day} of {length}"
    caps = [(mailbox.daily_limit, f"daily limit {mailbox.daily_limit}")]
    if day <= FIRST_DAYS:
        caps.append((FIRST_DAYS_CAP, f"at most {FIRST_DAYS_CAP} a day in the first 14 days"))
    if mailbox.prewarmed:
        caps.append((PREWARMED_CAP, f"pre-warmed mailboxes stay at {PREWARMED_CAP} or less"))
    cap, cap_reason = min(caps)
    volume = randomised(planned, cap=cap, rng=day_rng(mailbox.key, today))
    if planned >= cap:
        return Today(volume, cap_reason)
    return Today(volume, reason)


@dataclass(frozen=True)
class WorkingDay:
    """When a mailbox sends on one day: from `start` to `end`, not during lunch."""

    start: datetime
    end: datetime
    lunch_start: datetime
    lunch_end: datetime

    @property
    def minutes(self) -> int:
        total = (self.end - self.start) + (self.lunch_start - self.lunch_end)
        return max(0, int(total.total_seconds() // 60))


def working_day(key: str, day: date, *, window: tuple[time, time], tz: tzinfo) -> WorkingDay:
    """A mailbox's working day inside its sending window: stable per mailbox (its own usual
    start, end and lunch) and varied a little from day to day."""
    usual = random.Random(f"{key}:usual")
    today = day_rng(key, day)
    opens = datetime.combine(day, window[0], tzinfo=tz)
    closes = datetime.combine(day, window[1], tzinfo=tz)
    span = max(60, int((closes - opens).total_seconds() // 60))
    slack = min(60, span // 8)
    start = opens + timedelta(minutes=usual.randint(0, slack) + today.randint(0, slack // 2))
    end = closes - timedelta(minutes=usual.randint(0, slack) + today.randint(0, slack // 2))
    lunch_length = usual.randint(*LUNCH_MINUTES) if span >= 240 else 0
    middle = start + (end - start) / 2 + timedelta(minutes=today.randint(-20, 20))
    lunch_start = middle - timedelta(minutes=lunch_length // 2)
    return WorkingDay(start, end, lunch_start, lunch_start + timedelta(minutes=lunch_length))


def send_times(count: int, day: WorkingDay, rng: random.Random) -> list[datetime]:
    """`count` moments spread over the working day (outside lunch), each jittered inside its
    own slot so that sends never come in bursts; in order."""
    if count <= 0 or day.minutes <= 0:
        return []
    slot = day.minutes * 60 / count
    moments = []
    for index in range(count):
        offset = timedelta(seconds=(index + rng.uniform(0.1, 0.9)) * slot)
        moment = day.start + offset
        if moment >= day.lunch_start:
            moment += day.lunch_end - day.lunch_start
        moments.append(moment)
    return moments
