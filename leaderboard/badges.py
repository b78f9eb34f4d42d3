"""Badges and streaks, as pure rules over a workspace's history (docs/leaderboard.md)."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

EXTERNAL_TIERS = frozenset({"premium", "standard"})
STREAK_BADGES = (7, 30, 90)  # days in an external tier without a break
CLEAN_DAYS = 30  # days without a complaint


@dataclass(frozen=True)
class Badge:
    code: str
    title: str


@dataclass(frozen=True)
class TierStep:
    at: datetime
    tier: str
    provisional: bool = False


def external_streak_start(history: Sequence[TierStep]) -> datetime | None:
    """When the domain's current unbroken run in an external tier began (history oldest
    first); None when it is not in one now."""
    start: datetime | None = None
    for step in history:
        if step.tier in EXTERNAL_TIERS:
            if start is None:
                start = step.at
        else:
            start = None
    return start


def completed_rehabilitation(history: Sequence[TierStep]) -> bool:
    """Whether the domain ever went from rehabilitation to an external tier on a real score."""
    in_rehab = False
    for step in history:
        if step.tier == "rehab" and not step.provisional:
            in_rehab = True
        elif step.tier in EXTERNAL_TIERS and in_rehab and not step.provisional:
            return True
    return False


def streak_days(starts: Iterable[datetime | None], now: datetime) -> int:
    """The workspace's streak: its longest current run among its domains, in whole days."""
    best = 0
    for start in starts:
        if start is not None and start <= now:
            best = max(best, (now - start).days)
    return best


@dataclass(frozen=True)
class Facts:
    streak_days: int
    first_verified: date | None  # when its first domain was verified
    last_complaint: date | None
    sent_external: int  # in the window
    rehab_completed: bool


def badges(facts: Facts, today: date) -> list[Badge]:
    """The badges these facts earn, in a fixed order."""
    earned: list[Badge] = []
    if facts.first_verified is not None:
        earned.append(Badge("first_domain", "First domain verified"))
    for days in STREAK_BADGES:
        if facts.streak_days >= days:
            earned.append(Badge(f"streak_{days}", f"{days} days in an external tier"))
    clean_since = facts.last_complaint or facts.first_verified
    if (
        facts.sent_external > 0
        and facts.first_verified is not None
        and clean_since is not None
        and (today - clean_since).days >= CLEAN_DAYS
    ):
        earned.append(Badge("clean_30", f"{CLEAN_DAYS} days without a complaint"))
    if facts.rehab_completed:
        earned.append(Badge("rehab_graduate", "Completed a rehabilitation"))
    return earned
