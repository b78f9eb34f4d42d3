"""Unit economics: card fees are charged per charge, so how often a price is collected decides
what it loses (pure: no database)."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from billing.economics import (
    EconomicsTotal,
    PlanEconomics,
    dollars,
    economics_total,
    fee_share,
    percent,
    stripe_fee_cents,
    worked_example,
)

customers = st.integers(min_value=0, max_value=100_000)
amounts = st.integers(min_value=1, max_value=1_000_000)  # cents
infra = st.integers(min_value=0, max_value=10_000)  # cents per workspace per month
intervals = st.sampled_from(["month", "year"])


def test_it_shows_a_one_dollar_monthly_charges_fee_as_32_9_percent():
    assert stripe_fee_cents(100) == Decimal("32.9")
    assert percent(fee_share(100)) == "32.9 %"


def test_it_shows_a_twelve_dollar_yearly_charges_fee_as_5_4_percent():
    assert stripe_fee_cents(1200) == Decimal("64.8")
    assert percent(fee_share(1200)) == "5.4 %"


@given(n=customers, monthly=amounts, infra_cents=infra)
def test_it_charges_fees_per_charge_not_per_dollar_of_revenue(n, monthly, infra_cents):
    yearly, monthly_billed = worked_example(
        customers=n, monthly_cents=monthly, infra_cents_per_month=infra_cents
    )
    assert yearly.revenue == monthly_billed.revenue  # the same money...
    assert (yearly.charges, monthly_billed.charges) == (n, 12 * n)  # ...in 12 times the charges
    # The 2.9 % part is the same; every extra charge adds its fixed $0.30.
    assert monthly_billed.fees - yearly.fees == Decimal(30) * (monthly_billed.charges - n)
    assert yearly.infrastructure == monthly_billed.infrastructure


@given(n=st.integers(min_value=1, max_value=100_000), amount=amounts, interval=intervals)
def test_fees_grow_with_the_number_of_charges_at_the_same_price(n, amount, interval):
    one = PlanEconomics("one", 1, amount, interval, 0)
    many = PlanEconomics("many", n, amount, interval, 0)
    assert many.fees == n * one.fees
    assert many.fee_share == one.fee_share  # the share depends on the charge alone
    assert many.fees == many.charges * stripe_fee_cents(amount)


@given(n=customers, amount=amounts, interval=intervals, infra_cents=infra)
def test_margin_is_revenue_less_fees_less_infrastructure(n, amount, interval, infra_cents):
    row = PlanEconomics("price", n, amount, interval, infra_cents)
    assert row.margin == row.revenue - row.fees - row.infrastructure
    assert row.infrastructure == n * infra_cents * 12
    assert row.revenue_per_month * 12 == row.revenue
    assert row.margin_per_month * 12 == row.margin
    if n:
        assert row.margin_share == row.margin / row.revenue
        assert row.per_customer().margin_share == row.margin_share
    else:
        assert row.margin_share is None


def test_the_worked_example_matches_the_published_figures():
    yearly, monthly = worked_example(customers=1000, monthly_cents=100, infra_cents_per_month=25)

    assert (yearly.charges, monthly.charges) == (1000, 12_000)
    assert dollars(yearly.revenue) == dollars(monthly.revenue) == "$12,000.00"
    assert (dollars(yearly.fees), percent(yearly.fee_share)) == ("$648.00", "5.4 %")
    assert (dollars(monthly.fees), percent(monthly.fee_share)) == ("$3,948.00", "32.9 %")
    assert dollars(yearly.infrastructure) == dollars(monthly.infrastructure) == "$3,000.00"
    assert dollars(yearly.margin) == "$8,352.00"
    assert dollars(monthly.margin) == "$5,052.00"
    assert dollars(monthly.fees - yearly.fees) == "$3,300.00"


@given(rows=st.lists(st.tuples(customers, amounts, intervals, infra), max_size=6))
def test_the_total_adds_up_the_rows(rows):
    priced = [PlanEconomics("p", n, amount, every, cost) for n, amount, every, cost in rows]
    total = economics_total(priced)
    assert total.customers == sum(row.customers for row in priced)
    assert total.charges == sum(row.charges for row in priced)
    assert total.fees == sum((row.fees for row in priced), Decimal(0))
    assert total.margin == sum((row.margin for row in priced), Decimal(0))
    assert total.margin == total.revenue - total.fees - total.infrastructure


def test_a_total_without_revenue_has_no_shares():
    total = economics_total([])
    assert total == EconomicsTotal(0, 0, Decimal(0), Decimal(0), Decimal(0))
    assert (total.fee_share, total.margin_share) == (None, None)


def test_dollars_show_two_decimals_rounded_half_up_with_thousands():
    assert dollars(0) == "$0.00"
    assert dollars(5) == "$0.05"
    assert dollars(Decimal("32.9")) == "$0.33"
    assert dollars(Decimal("64.5")) == "$0.65"
    assert dollars(394_800) == "$3,948.00"
    assert dollars(Decimal("-1250")) == "-$12.50"
    assert dollars(Decimal("-0.4")) == "$0.00"


@given(cents=st.integers(min_value=-(10**12), max_value=10**12))
def test_dollars_read_back_to_the_cents(cents):
    shown = dollars(cents)
    negative = shown.startswith("-")
    value = Decimal(shown.lstrip("-").lstrip("$").replace(",", "")) * 100
    assert (-value if negative else value) == cents
