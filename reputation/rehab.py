"""The rehabilitation meter (docs/rehabilitation.md) as pure rules: no Django, no Celery.

What a domain's owner is told about the way back to external sending: which case the domain is
in, what is done, what remains now and one explanation that agrees with both numbers. The
selector gathers the counts; this module decides the state, the numbers and the words.

A demoted domain's remaining number is recomputed from the current window with every look, and
each remaining message is counted with the network's typical engagement
(docs/rehabilitation.md#score-unlock). Mail that earns fewer replies and opens than that,
bounces or draws complaints therefore makes the number grow instead of shrink; the explanation
names what moved it.
"""

import enum
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from reputation.scoring import (
    MIN_SENT_FOR_SCORE,
    RehabTarget,
    Tier,
    WindowMetrics,
    rehab_bounce_dilution,
    rehab_score_unlock,
)

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_BOUNCE_POINTS = 10  # score points per percentage point (docs/trust-score.md#score-formula)
_SPAM_POINTS = 1000


class RehabState(enum.StrEnum):
    NOT_NEEDED = "not_needed"  # premium or standard: sending externally
    UNVERIFIED = "unverified"  # no score until the DNS records are verified
    NEW = "new"  # provisional: too few messages in the window for a score
    REHAB = "rehab"  # scored below the gate: earns its way back by clean warm-up mail
    COOLDOWN = "cooldown"  # out of rotation until a date, whatever the score
    QUARANTINE = "quarantine"  # lifted by staff, not earned back


@dataclass(frozen=True)
class RehabRules:
    reply_rate: float = 0.25  # replies per clean warm-up message (the network's engagement)
    open_rate: float = 0.60  # unique opens per clean warm-up message
    target: float = 72.0  # the promotion gate: 70 plus the hysteresis
    max_messages: int | None = 50_000  # above this a target is unreachable in practice
    window_days: int = 30


@dataclass(frozen=True)
class RehabMeter:
    state: RehabState
    done: int
    remaining: int | None  # None: no number of messages applies (never reachable, or not a count)
    percent: int | None  # done / (done + remaining), rounded down; None: no bar to draw
    summary: str  # the numbers in one sentence
    explanation: str  # why, consistent with the numbers
    unlock: RehabTarget | None = None  # the score unlock from the current window
    bounce_dilution: int | None = None
    by_hand: int = 0  # of `done`: warming tasks the owner handled by hand


def rehab_state(*, tier: str, scored: bool, provisional: bool, cooldown: bool) -> RehabState:
    """Which case the meter describes; a provisional domain is new, never a rehabilitation case."""
    if tier == Tier.QUARANTINE:
        return RehabState.QUARANTINE
    if not scored:
        return RehabState.UNVERIFIED
    if provisional:
        return RehabState.NEW
    if tier != Tier.REHAB:
        return RehabState.NOT_NEEDED
    return RehabState.COOLDOWN if cooldown else RehabState.REHAB


def rehab_percent(done: int, remaining: int) -> int:
    """Share of the way done, in whole per cent rounded down: 100 only once nothing remains."""
    if remaining <= 0:
        return 100
    done = max(0, done)
    return 100 * done // (done + remaining)


def rehab_meter(
    state: RehabState,
    *,
    window: WindowMetrics,
    rules: RehabRules,
    now: datetime,
    done: int = 0,
    since: datetime | None = None,
    start: WindowMetrics | None = None,
    first_score: bool = True,
    cooldown_until: datetime | None = None,
    by_hand: int = 0,
) -> RehabMeter:
    """The meter for a domain in `state` with the current `window`.

    `done` counts the clean warm-up messages since rehabilitation began (`since`); `start` is
    the window as it was then, when known. A new domain's done is its window's sent count.
    `by_hand` warming tasks the owner did count as done too (SPEC: each one processed counts
    toward progress); they do not change the window, so what remains is the window's alone."""
    if state == RehabState.NEW:
        return _new(window, rules, now, first_score, cooldown_until)
    if state in (RehabState.REHAB, RehabState.COOLDOWN):
        return _rehab(
            state, window, rules, now, max(0, done), since, start, cooldown_until, max(0, by_hand)
        )
    if state == RehabState.UNVERIFIED:
        return RehabMeter(
            state,
            0,
            None,
            None,
            "No score yet: the domain's DNS records are not verified.",
            "Publish the DNS records the domain page lists and check them; once they pass, "
            f"{MIN_SENT_FOR_SCORE} sent messages give a first score.",
        )
    if state == RehabState.QUARANTINE:
        return RehabMeter(
            state,
            0,
            None,
            None,
            "Quarantined: all sending is stopped.",
            "Staff lift a quarantine once its cause is dealt with; warm-up messages do not "
            "count toward it.",
        )
    return RehabMeter(state, 0, 0, None, "", "")


def _new(
    window: WindowMetrics,
    rules: RehabRules,
    now: datetime,
    first_score: bool,
    cooldown_until: datetime | None,
) -> RehabMeter:
    sent = max(0, window.sent)
    remaining = max(0, MIN_SENT_FOR_SCORE - sent)
    done = min(sent, MIN_SENT_FOR_SCORE)
    goal = "a first score" if first_score else "a score again"
    if remaining:
        summary = f"{_count(remaining, 'more message')} to get {goal}."
    else:
        summary = f"Enough messages for {goal}: it appears at the next score update."
    explanation = (
        f"A score needs {MIN_SENT_FOR_SCORE} messages sent in the last {rules.window_days} days; "
        f"this domain has sent {sent:,}. Until then it sends internal warm-up mail only; a score "
        f"of {_num(rules.target)} or more then unlocks external sending."
    )
    if cooldown_until is not None:
        explanation += f" It is also in cool-down until {_day(cooldown_until, now)}."
    return RehabMeter(
        RehabState.NEW, done, remaining, rehab_percent(done, remaining), summary, explanation
    )


def _rehab(
    state: RehabState,
    window: WindowMetrics,
    rules: RehabRules,
    now: datetime,
    done: int,
    since: datetime | None,
    start: WindowMetrics | None,
    cooldown_until: datetime | None,
    by_hand: int = 0,
) -> RehabMeter:
    unlock = _unlock(window, rules, rules.max_messages)
    dilution = rehab_bounce_dilution(sent=window.sent, hard_bounces=window.hard_bounces)
    target = _num(rules.target)
    began = f" since rehabilitation began on {_day(since, now)}" if since else ""
    tasks = f" and {_count(by_hand, 'warming task')} by hand" if by_hand else ""
    done_text = f"{_count(done, 'clean warm-up message')}{tasks} done{began}"
    cooling = state == RehabState.COOLDOWN
    until = f" until {_day(cooldown_until, now)}" if cooldown_until else ""
    cooldown_note = (
        f" A cool-down also keeps the domain out of rotation{until}; warm-up messages do not "
        "shorten it."
        if cooling
        else ""
    )

    def meter(remaining: int | None, percent: int | None, summary: str, why: str) -> RehabMeter:
        return RehabMeter(
            state, done + by_hand, remaining, percent, summary, why, unlock, dilution, by_hand
        )

    x = unlock.messages
    if x is None:
        return meter(
            None,
            None,
            f"{done_text}; no number of clean warm-up messages reaches {target} now.",
            f"{unlock.reason} Warming alone cannot bring this domain back: contact support."
            + cooldown_note,
        )
    if x == 0:
        if cooling:
            return meter(
                0,
                None,
                f"In cool-down{until}: the score already reaches {target}, so external sending "
                "returns when the cool-down ends.",
                "A cool-down follows a spam block or a blocklist listing and ends on its date; "
                "warm-up messages do not shorten it.",
            )
        return meter(
            0,
            100,
            f"{done_text}; none more needed: the current window already reaches {target}.",
            "External sending returns at the next score update (at least hourly).",
        )
    percent = rehab_percent(done + by_hand, x)
    if not unlock.reachable:
        return meter(
            x,
            percent,
            f"{done_text}; {x:,} more needed now, more than the {rules.max_messages:,} the "
            "platform treats as reachable.",
            f"Unreachable in practice: {_heaviest(window)}. Rather than warming on, wait: the "
            f"window keeps only the last {rules.window_days} days, so they age out and this "
            "number falls with every score update." + cooldown_note,
        )
    why = (
        f"Counted from the current window ({window.sent:,} sent in the last {rules.window_days} "
        f"days), which holds {_burden(window)}. Each clean warm-up message dilutes that and is "
        f"counted with the network's typical {_pct(rules.reply_rate)} replies and "
        f"{_pct(rules.open_rate)} opens, so mail that earns less, bounces or draws complaints "
        "raises the number."
    )
    why += _drift(window, start, done, x, rules)
    return meter(x, percent, f"{done_text}; {x:,} more needed now.", why + cooldown_note)


def _unlock(window: WindowMetrics, rules: RehabRules, max_messages: int | None) -> RehabTarget:
    return rehab_score_unlock(
        window,
        reply_rate=rules.reply_rate,
        open_rate=rules.open_rate,
        target=rules.target,
        max_messages=max_messages,
    )


def _burden(window: WindowMetrics) -> str:
    items = []
    if window.hard_bounces:
        rate = window.bounce_percent
        items.append(
            f"{_count(window.hard_bounces, 'hard bounce')} ({_num(rate)} % of sent, costing "
            f"{_num(_BOUNCE_POINTS * rate, 1)} points)"
        )
    if window.complaints:
        rate = window.spam_percent
        items.append(
            f"{_count(window.complaints, 'complaint')} ({_num(rate, 3)} % of delivered, "
            f"costing {_num(_SPAM_POINTS * rate, 1)} points)"
        )
    items.append(
        f"replies to {_num(window.reply_percent, 1)} % and opens of "
        f"{_num(window.open_percent, 1)} % of delivered mail"
    )
    return _join(items)


def _heaviest(window: WindowMetrics) -> str:
    spam = _SPAM_POINTS * window.spam_percent
    bounces = _BOUNCE_POINTS * window.bounce_percent
    if window.complaints and spam >= bounces:
        return f"the window's {_count(window.complaints, 'complaint')} weigh too much"
    if window.hard_bounces:
        return f"the window's {_count(window.hard_bounces, 'hard bounce')} weigh too much"
    return "the window's low engagement takes too many messages to dilute"


def _drift(
    window: WindowMetrics, start: WindowMetrics | None, done: int, x: int, rules: RehabRules
) -> str:
    """Why the number is not simply the start's target less what was done, when it is not."""
    if start is None:
        return ""
    at_start = _unlock(start, rules, None).messages
    grew = window.sent - start.sent
    others = grew - done  # a lower bound: days that aged out only make `grew` smaller
    note = ""
    if others > 0:
        note = (
            f" At least {others:,} other messages joined the window since then (campaign mail, "
            "or warm-up that bounced or drew a complaint): they move the number but are not "
            "counted as done."
        )
    if at_start is None or x <= max(0, at_start - done):
        return note
    reasons = []
    if window.hard_bounces > start.hard_bounces:
        reasons.append(_count(window.hard_bounces - start.hard_bounces, "new hard bounce"))
    if window.complaints > start.complaints:
        reasons.append(_count(window.complaints - start.complaints, "new complaint"))
    replies = window.replies - start.replies
    opens = window.unique_opens - start.unique_opens
    # Net changes: a negative one means older days left the window, and then the counts that
    # joined cannot be told apart from those that left.
    aged = grew <= 0 or replies < 0 or opens < 0
    if not aged:
        expected_replies = Fraction(str(rules.reply_rate)) * grew
        expected_opens = Fraction(str(rules.open_rate)) * grew
        if replies < expected_replies or opens < expected_opens:
            reasons.append(
                f"the {grew:,} messages that joined the window brought {replies:,} replies and "
                f"{opens:,} opens where the count assumes {_num(float(expected_replies), 1)} and "
                f"{_num(float(expected_opens), 1)}"
            )
    if aged or not reasons:
        reasons.append("older days left the window")
    rose = x - max(0, at_start - done)
    return (
        f" That is {rose:,} more than the {at_start:,} needed when rehabilitation began less the "
        f"{done:,} done, because {_join(reasons)}." + note
    )


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _num(value: float, places: int = 2) -> str:
    text = f"{value:,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _pct(rate: float) -> str:
    return f"{_num(rate * 100, 1)} %"


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _day(when: datetime, now: datetime) -> str:
    text = f"{when.day} {_MONTHS[when.month - 1]}"
    return text if when.year == now.year else f"{text} {when.year}"
