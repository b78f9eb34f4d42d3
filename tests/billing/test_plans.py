"""The plan catalog's rules: which subscription shapes are sold, grace, entitlements."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from billing.plans import (
    ALLOWED_SHAPES,
    EVALUATION,
    GRACE_PERIOD,
    PLANS,
    PRICES,
    PRO,
    STARTER,
    Standing,
    entitlements_resolve,
    shape_problem,
    standing_of,
)

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
STATUSES = ["active", "trialing", "past_due", "unpaid", "canceled", "incomplete", "paused", ""]


def test_it_sells_starter_only_yearly_at_twelve_dollars():
    assert [(p.interval, p.amount_cents) for p in STARTER.prices] == [("year", 1200)]
    assert shape_problem(plan="starter", interval="year", interval_count=1) is None
    problem = shape_problem(plan="starter", interval="month", interval_count=1)
    assert problem is not None and "only yearly" in problem
    assert shape_problem(plan="starter", interval="month", interval_count=12) is not None
    assert shape_problem(plan="starter", interval="year", interval_count=2) is not None


def test_it_sells_pro_monthly_and_yearly():
    assert shape_problem(plan="pro", interval="month", interval_count=1) is None
    assert shape_problem(plan="pro", interval="year", interval_count=1) is None
    assert shape_problem(plan="pro", interval="week", interval_count=1) is not None
    assert shape_problem(plan=None, interval="year", interval_count=1) is not None
    assert shape_problem(plan="evaluation", interval="year", interval_count=1) is not None


@given(
    plan=st.sampled_from([*PLANS, None, "gold"]),
    interval=st.sampled_from(["day", "week", "month", "year", None]),
    count=st.integers(1, 24),
)
def test_a_shape_is_accepted_exactly_when_the_catalog_sells_it(plan, interval, count):
    sold = any(
        price.plan == plan and price.interval == interval and count == 1
        for price in PRICES.values()
    )
    assert (shape_problem(plan=plan, interval=interval, interval_count=count) is None) == sold
    if plan == "starter":
        assert (interval, count) in ALLOWED_SHAPES["starter"] or not sold


def test_past_due_keeps_the_plan_for_seven_days_then_lapses():
    since = NOW
    for days, expected in [(0, Standing.GRACE), (6.99, Standing.GRACE), (7, Standing.LAPSED)]:
        now = since + timedelta(days=days)
        standing, ends = standing_of(status="past_due", past_due_since=since, now=now)
        assert standing == expected
        assert ends == since + GRACE_PERIOD


@given(
    status=st.sampled_from(STATUSES),
    plan=st.sampled_from(["starter", "pro", None]),
    flagged=st.booleans(),
    comp=st.sampled_from([None, "starter", "pro"]),
    days_past_due=st.floats(0, 30),
)
def test_entitlements_follow_payment_flags_and_comps(status, plan, flagged, comp, days_past_due):
    since = NOW - timedelta(days=days_past_due)
    got = entitlements_resolve(
        plan=plan, status=status, past_due_since=since, flagged=flagged, comp_plan=comp, now=NOW
    )
    paying = status in ("active", "trialing") or (
        status in ("past_due", "unpaid") and days_past_due < 7
    )
    if plan and paying and not flagged:
        assert got.plan == PLANS[plan]
        assert got.external_sending
    elif comp:
        assert got.plan == PLANS[comp]
    else:
        assert got.plan == EVALUATION
        assert not got.external_sending
    # A flagged subscription never gives its own plan: only a comp can.
    if flagged and plan == "starter" and comp != "starter":
        assert got.plan != STARTER


def test_an_installation_that_sells_nothing_gives_its_unpaid_plan():
    got = entitlements_resolve(
        plan=None,
        status="",
        past_due_since=None,
        flagged=False,
        comp_plan=None,
        now=NOW,
        unpaid_plan="pro",
    )
    assert got.plan == PRO and got.external_sending


def test_the_daily_grant_counts_domains_in_external_tiers_up_to_the_plan_limit():
    starter = entitlements_resolve(
        plan="starter",
        status="active",
        past_due_since=None,
        flagged=False,
        comp_plan=None,
        now=NOW,
    )
    assert starter.daily_grant(["premium", "standard"]) == 150
    assert starter.daily_grant(["premium", "premium", "premium"]) == 200  # 2 domains on Starter
    assert starter.daily_grant(["rehab", "quarantine"]) == 0
    evaluation = entitlements_resolve(
        plan=None, status="", past_due_since=None, flagged=False, comp_plan=None, now=NOW
    )
    assert evaluation.daily_grant(["premium"]) == 0
