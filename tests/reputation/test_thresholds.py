"""The thresholds (docs/tiers-and-actions.md#thresholds) fire above their line, never at or below
it (pure, no database)."""

import pytest

from reputation.scoring import WindowMetrics
from reputation.thresholds import (
    domain_findings,
    limit_after_cut,
    limit_restored_step,
    mailbox_findings,
)


def codes(findings) -> set[str]:
    return {f.code for f in findings}


@pytest.mark.parametrize(
    ("hard", "expected"),
    [(2, set()), (3, {"bounce_warning"}), (5, {"bounce_warning"}), (6, {"bounce_critical"})],
)
def test_domain_bounce_thresholds(hard, expected):
    m = WindowMetrics(sent=100, hard_bounces=hard)
    assert codes(domain_findings(m, delivered=100, final_outcomes=100, min_sent=20)) == expected


@pytest.mark.parametrize(
    ("complaints", "expected"),
    [
        (8, set()),
        (9, {"spam_warning"}),
        (15, {"spam_warning"}),
        (16, {"spam_pause"}),
        (30, {"spam_pause"}),
        (31, {"spam_quarantine"}),
    ],
)
def test_domain_spam_thresholds(complaints, expected):
    m = WindowMetrics(sent=10_000, complaints=complaints)  # 10,000 delivered: 8 = 0.08 %
    assert (
        codes(domain_findings(m, delivered=10_000, final_outcomes=10_000, min_sent=20)) == expected
    )


@pytest.mark.parametrize(
    ("delivered", "expected"),
    [
        (95, set()),
        (94, {"delivery_warning"}),
        (90, {"delivery_warning"}),
        (89, {"delivery_critical"}),
    ],
)
def test_delivery_rate_thresholds(delivered, expected):
    m = WindowMetrics(sent=100)
    assert (
        codes(domain_findings(m, delivered=delivered, final_outcomes=100, min_sent=20)) == expected
    )


def test_nothing_fires_below_the_minimum_sample():
    m = WindowMetrics(sent=19, hard_bounces=10, complaints=5)
    assert domain_findings(m, delivered=9, final_outcomes=19, min_sent=20) == []
    assert mailbox_findings(m, m, min_sent=20) == []


@pytest.mark.parametrize(("hard_24h", "spike"), [(3, False), (4, True)])
def test_the_24h_spike_is_above_three_percent(hard_24h, spike):
    window = WindowMetrics(sent=1000, hard_bounces=hard_24h)
    last_24h = WindowMetrics(sent=100, hard_bounces=hard_24h)
    assert ("bounce_spike" in codes(mailbox_findings(window, last_24h, min_sent=20))) is spike


def test_findings_carry_their_numbers():
    (finding,) = mailbox_findings(
        WindowMetrics(sent=100, hard_bounces=6), WindowMetrics(), min_sent=20
    )
    assert finding.code == "bounce_pause"
    assert finding.numbers == {"bounce_percent": 6.0, "hard_bounces": 6, "sent": 100}


def test_the_limit_cut_is_forty_percent_and_comes_back_within_seven_clean_days():
    assert limit_after_cut(40) == 24
    limit, days = 24, 0
    while limit < 40:
        limit, days = limit_restored_step(limit, 40), days + 1
    assert limit == 40
    assert days <= 7
