"""Bounce protection: when a campaign's recent hard bounces say its list is bad (pure).

The look-back is the campaign's last `LOOKBACK` sends. The line is the domain's warning level
of the hard-bounce rate (above 2 %), applied to a full look-back: more than 2 hard
bounces among the last 100 sends trips it, even before 100 sends have gone (3 bounces in the first
40 sends are already more than the line allows in 100). Exactly at the line does not trip it.
"""

from dataclasses import dataclass

from reputation.thresholds import BOUNCE_WARNING

LOOKBACK = 100
WARNING_PERCENT = BOUNCE_WARNING  # the domain's warning line, one source


@dataclass(frozen=True)
class BounceVerdict:
    trips: bool
    sends: int
    hard_bounces: int
    allowed: int

    @property
    def reason(self) -> str:
        """What the campaign list shows when protection paused it."""
        return (
            f"Bounce protection: {self.hard_bounces} hard bounces in the last {self.sends} "
            f"messages (more than {self.allowed} in {LOOKBACK}). Clean the list, then resume."
        )


def bounce_allowance(*, lookback: int = LOOKBACK, warning_percent: float = WARNING_PERCENT) -> int:
    """How many hard bounces a full look-back may hold without tripping."""
    return int(lookback * warning_percent / 100)


def bounce_verdict(
    *,
    sends: int,
    hard_bounces: int,
    lookback: int = LOOKBACK,
    warning_percent: float = WARNING_PERCENT,
) -> BounceVerdict:
    """Whether `hard_bounces` among the campaign's last `sends` (at most `lookback`) trip it."""
    if sends < 0 or hard_bounces < 0 or hard_bounces > sends:
        raise ValueError("Hard bounces must be between 0 and the number of sends.")
    if sends > lookback:
        raise ValueError(f"Count only the last {lookback} sends.")
    allowed = bounce_allowance(lookback=lookback, warning_percent=warning_percent)
    return BounceVerdict(
        trips=hard_bounces > allowed, sends=sends, hard_bounces=hard_bounces, allowed=allowed
    )
