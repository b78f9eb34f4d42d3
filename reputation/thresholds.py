"""The thresholds (docs/tiers-and-actions.md#thresholds) as pure findings (no Django): what is
wrong, how badly, with the numbers.

Rate findings need a minimum sample (`min_sent`) so one bounce in three sends pauses nothing;
"above" means strictly above the threshold, "below" strictly below.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from reputation.scoring import WindowMetrics

BOUNCE_WARNING = 2.0
BOUNCE_PAUSE = 5.0
BOUNCE_SPIKE_24H = 3.0
SPAM_WARNING = 0.08
SPAM_PAUSE = 0.15
SPAM_QUARANTINE = 0.3
DELIVERY_WARNING = 95.0
DELIVERY_CRITICAL = 90.0
LIMIT_CUT = 0.40
# Spam blocks count toward a cool-down over this many hours (by the time they happened).
SPAM_BLOCK_WINDOW_HOURS = 24


@dataclass(frozen=True)
class Finding:
    code: str
    level: str  # warning | critical
    message: str
    numbers: dict[str, Any] = field(default_factory=dict)


def _bounce(m: WindowMetrics, subject: str, *, over_limit: str) -> list[Finding]:
    numbers = {
        "bounce_percent": round(m.bounce_percent, 2),
        "hard_bounces": m.hard_bounces,
        "sent": m.sent,
    }
    if m.bounce_percent > BOUNCE_PAUSE:
        return [
            Finding(
                over_limit,
                "critical",
                f"{subject} hard bounce rate is {m.bounce_percent:.2f}% (above {BOUNCE_PAUSE:g}%).",
                numbers,
            )
        ]
    if m.bounce_percent > BOUNCE_WARNING:
        return [
            Finding(
                "bounce_warning",
                "warning",
                f"{subject} hard bounce rate is {m.bounce_percent:.2f}% (above "
                f"{BOUNCE_WARNING:g}%). Clean your list before it reaches "
                f"{BOUNCE_PAUSE:g}%.",
                numbers,
            )
        ]
    return []


def domain_findings(
    m: WindowMetrics, *, delivered: int, final_outcomes: int, min_sent: int
) -> list[Finding]:
    """Findings for a domain's window. `delivered`/`final_outcomes` give the delivery rate."""
    if m.sent < min_sent:
        return []
    found = _bounce(m, "The domain's", over_limit="bounce_critical")
    spam = {
        "spam_percent": round(m.spam_percent, 4),
        "complaints": m.complaints,
        "delivered": m.delivered,
    }
    if m.spam_percent > SPAM_QUARANTINE:
        found.append(
            Finding(
                "spam_quarantine",
                "critical",
                f"Spam complaints are {m.spam_percent:.3f}% of delivered mail (above "
                f"{SPAM_QUARANTINE:g}%): all sending stops.",
                spam,
            )
        )
    elif m.spam_percent > SPAM_PAUSE:
        found.append(
            Finding(
                "spam_pause",
                "critical",
                f"Spam complaints are {m.spam_percent:.3f}% of delivered mail (above "
                f"{SPAM_PAUSE:g}%): the domain's mailboxes are paused.",
                spam,
            )
        )
    elif m.spam_percent > SPAM_WARNING:
        found.append(
            Finding(
                "spam_warning",
                "warning",
                f"Spam complaints are {m.spam_percent:.3f}% of delivered mail (above "
                f"{SPAM_WARNING:g}%).",
                spam,
            )
        )
    if final_outcomes >= min_sent:
        rate = 100.0 * delivered / final_outcomes
        numbers = {
            "delivery_percent": round(rate, 2),
            "delivered": delivered,
            "final_outcomes": final_outcomes,
        }
        if rate < DELIVERY_CRITICAL:
            found.append(
                Finding(
                    "delivery_critical",
                    "critical",
                    f"Only {rate:.1f}% of mail was delivered (below {DELIVERY_CRITICAL:g}%).",
                    numbers,
                )
            )
        elif rate < DELIVERY_WARNING:
            found.append(
                Finding(
                    "delivery_warning",
                    "warning",
                    f"{rate:.1f}% of mail was delivered (below {DELIVERY_WARNING:g}%).",
                    numbers,
                )
            )
    return found


def mailbox_findings(
    window: WindowMetrics, last_24h: WindowMetrics, *, min_sent: int
) -> list[Finding]:
    """Findings for one mailbox: window bounce rate, and a bounce spike in the last 24 hours."""
    found = (
        _bounce(window, "This mailbox's", over_limit="bounce_pause")
        if window.sent >= min_sent
        else []
    )
    if last_24h.sent >= min_sent and last_24h.bounce_percent > BOUNCE_SPIKE_24H:
        found.append(
            Finding(
                "bounce_spike",
                "warning",
                f"{last_24h.bounce_percent:.2f}% of the last 24 hours' mail bounced "
                f"(above {BOUNCE_SPIKE_24H:g}%): the daily limit is cut by "
                f"{LIMIT_CUT:.0%} until it stays clean.",
                {
                    "bounce_percent_24h": round(last_24h.bounce_percent, 2),
                    "hard_bounces_24h": last_24h.hard_bounces,
                    "sent_24h": last_24h.sent,
                },
            )
        )
    return found


def receiving_domain(address: str) -> str:
    """The domain part of a recipient address (lower-cased), "" when there is none."""
    local, at, domain = address.rpartition("@")
    return domain.strip().lower() if at and local else ""


def spam_block_finding(
    recipients: Sequence[str], *, example: str, min_domains: int
) -> Finding | None:
    """Spam blocks of the recent window, by recipient: critical (a cool-down) once `min_domains`
    distinct receiving domains agree, a warning while fewer do. One receiving server's verdict
    is its own policy, not the sender's reputation; a public listing shows up everywhere."""
    if not recipients:
        return None
    domains = sorted({d for d in map(receiving_domain, recipients) if d})
    numbers: dict[str, Any] = {
        "spam_blocks": len(recipients),
        "receiving_domains": len(domains),
        "domains": domains[:10],
        "min_domains": min_domains,
    }
    quoted = f"“{example[:160]}”" if example else "no reply text"
    if len(domains) >= min_domains:
        return Finding(
            "spam_block",
            "critical",
            f"{len(domains)} receiving domains ({', '.join(domains[:5])}) rejected mail as spam "
            f"or blocklisted within {SPAM_BLOCK_WINDOW_HOURS} hours, e.g. {quoted}.",
            numbers,
        )
    where = ", ".join(domains) if domains else "a receiving server"
    return Finding(
        "spam_block",
        "warning",
        f"{where} rejected mail as spam or blocklisted, e.g. {quoted}. A cool-down starts only "
        f"when {min_domains} distinct receiving domains do so within "
        f"{SPAM_BLOCK_WINDOW_HOURS} hours.",
        numbers,
    )


def limit_after_cut(limit: int) -> int:
    return max(1, int(limit * (1 - LIMIT_CUT)))


def limit_restored_step(current: int, original: int, days: int = 7) -> int:
    """One clean day's step back toward the original limit (restored over `days` clean days)."""
    step = max(1, -(-(original - limit_after_cut(original)) // days))
    return min(original, current + step)
