"""Unit economics: what a plan earns after card fees and infrastructure. Pure, no Django.

Stripe's standard card pricing is 2.9 % of the charge plus $0.30 per charge, so a plan's fees
depend on how often it is charged, not on its monthly price: a $1 monthly charge loses 32.9 %,
the same dollar collected as one $12 yearly charge loses 5.4 %.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

FEE_RATE = Decimal("0.029")
FEE_FIXED_CENTS = Decimal(30)
CHARGES_PER_YEAR = {"month": 12, "year": 1}


def stripe_fee_cents(amount_cents: int) -> Decimal:
    """Stripe's fee for one charge of this amount, in cents (unrounded)."""
    return Decimal(amount_cents) * FEE_RATE + FEE_FIXED_CENTS


def fee_share(amount_cents: int) -> Decimal:
    """The fee as a share of the charge, e.g. Decimal('0.329') for a $1 charge."""
    return stripe_fee_cents(amount_cents) / Decimal(amount_cents)


def percent(share: Decimal) -> str:
    """Decimal('0.329') -> '32.9 %'."""
    return f"{(share * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)} %"


@dataclass(frozen=True)
class PlanEconomics:
    """One price's customers over a year, in cents."""

    label: str
    customers: int
    amount_cents: int
    interval: str
    infra_cents_per_month: int

    @property
    def charges(self) -> int:
        return self.customers * CHARGES_PER_YEAR[self.interval]

    @property
    def revenue(self) -> Decimal:
        return Decimal(self.charges * self.amount_cents)

    @property
    def fees(self) -> Decimal:
        return self.charges * stripe_fee_cents(self.amount_cents)

    @property
    def infrastructure(self) -> Decimal:
        return Decimal(self.customers * self.infra_cents_per_month * 12)

    @property
    def margin(self) -> Decimal:
        return self.revenue - self.fees - self.infrastructure

    @property
    def fee_share(self) -> Decimal:
        return fee_share(self.amount_cents)

    @property
    def margin_share(self) -> Decimal | None:
        return self.margin / self.revenue if self.revenue else None

    @property
    def charges_per_customer(self) -> int:
        return CHARGES_PER_YEAR[self.interval]

    @property
    def fee_per_charge(self) -> Decimal:
        return stripe_fee_cents(self.amount_cents)

    @property
    def revenue_per_month(self) -> Decimal:
        return self.revenue / 12

    @property
    def margin_per_month(self) -> Decimal:
        return self.margin / 12

    def per_customer(self) -> "PlanEconomics":
        """The same price for one customer: its shares hold for any number of customers."""
        return PlanEconomics(
            self.label, 1, self.amount_cents, self.interval, self.infra_cents_per_month
        )


@dataclass(frozen=True)
class EconomicsTotal:
    """Several prices' customers added up over a year, in cents."""

    customers: int
    charges: int
    revenue: Decimal
    fees: Decimal
    infrastructure: Decimal

    @property
    def margin(self) -> Decimal:
        return self.revenue - self.fees - self.infrastructure

    @property
    def revenue_per_month(self) -> Decimal:
        return self.revenue / 12

    @property
    def margin_per_month(self) -> Decimal:
        return self.margin / 12

    @property
    def fee_share(self) -> Decimal | None:
        return self.fees / self.revenue if self.revenue else None

    @property
    def margin_share(self) -> Decimal | None:
        return self.margin / self.revenue if self.revenue else None


def economics_total(rows: Iterable[PlanEconomics]) -> EconomicsTotal:
    """The sum of the rows (their fees as charged: per charge, not per dollar)."""
    rows = list(rows)
    return EconomicsTotal(
        customers=sum(row.customers for row in rows),
        charges=sum(row.charges for row in rows),
        revenue=sum((row.revenue for row in rows), Decimal(0)),
        fees=sum((row.fees for row in rows), Decimal(0)),
        infrastructure=sum((row.infrastructure for row in rows), Decimal(0)),
    )


def dollars(cents: Decimal | int) -> str:
    """Cents as dollars to the cent, rounded half up: Decimal('394800') -> '$3,948.00'."""
    amount = (Decimal(cents) / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"


def worked_example(
    *, customers: int, monthly_cents: int, infra_cents_per_month: int
) -> tuple[PlanEconomics, PlanEconomics]:
    """The same customers paying the same monthly price, billed yearly and billed monthly."""
    infra = infra_cents_per_month
    return (
        PlanEconomics("billed yearly", customers, monthly_cents * 12, "year", infra),
        PlanEconomics("billed monthly", customers, monthly_cents, "month", infra),
    )
