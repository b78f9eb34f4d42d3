"""Plans, prices and entitlements in one place, and the rules that read them.

Pure: no Django. The catalog below is what `manage.py billing_sync_plans` creates in Stripe, what
the pages show and what every limit check reads. Amounts are in cents (USD).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

GRACE_PERIOD = timedelta(days=7)

# Stripe subscription statuses, grouped by what they mean for the customer.
PAYING_STATUSES = frozenset({"active", "trialing"})
PAST_DUE_STATUSES = frozenset({"past_due", "unpaid"})


class Interval(StrEnum):
    MONTH = "month"
    YEAR = "year"


@dataclass(frozen=True)
class Price:
    """One way to pay for a plan; `key` is the Stripe lookup key."""

    key: str
    plan: str
    interval: Interval
    amount_cents: int

    @property
    def dollars(self) -> str:
        whole, cents = divmod(self.amount_cents, 100)
        return f"{whole}" if not cents else f"{whole}.{cents:02d}"

    @property
    def monthly_cents(self) -> float:
        return self.amount_cents / (12 if self.interval == Interval.YEAR else 1)


@dataclass(frozen=True)
class Plan:
    code: str
    name: str
    domains: int
    mailboxes: int
    seats: int
    api_access: bool
    # Warm-up messages a mailbox may send per day once its ramp is complete.
    warmup_per_mailbox: int
    # External-send credits granted per day for each domain in an external tier.
    daily_credits: Mapping[str, int] = field(default_factory=dict)
    prices: tuple[Price, ...] = ()
    sold: bool = True  # the evaluation level is not bought

    @property
    def external_sending(self) -> bool:
        return any(self.daily_credits.values())

    def price(self, interval: Interval) -> Price | None:
        return next((price for price in self.prices if price.interval == interval), None)


EVALUATION = Plan(
    code="evaluation",
    name="Evaluation",
    domains=1,
    mailboxes=2,
    seats=2,
    api_access=False,
    warmup_per_mailbox=20,
    daily_credits=MappingProxyType({}),
    sold=False,
)
STARTER = Plan(
    code="starter",
    name="Starter",
    domains=2,
    mailboxes=5,
    seats=2,
    api_access=False,
    warmup_per_mailbox=40,
    daily_credits=MappingProxyType({"premium": 100, "standard": 50}),
    # $1 a month, sold only as one yearly charge: a monthly $1 charge would lose 32.9 % to fees.
    prices=(Price("starter_yearly", "starter", Interval.YEAR, 1200),),
)
PRO = Plan(
    code="pro",
    name="Pro",
    domains=10,
    mailboxes=50,
    seats=10,
    api_access=True,
    warmup_per_mailbox=80,
    daily_credits=MappingProxyType({"premium": 1000, "standard": 500}),
    prices=(
        Price("pro_monthly", "pro", Interval.MONTH, 1000),
        Price("pro_yearly", "pro", Interval.YEAR, 10000),
    ),
)

PLANS: Mapping[str, Plan] = MappingProxyType({p.code: p for p in (EVALUATION, STARTER, PRO)})
PRICES: Mapping[str, Price] = MappingProxyType(
    {price.key: price for plan in PLANS.values() for price in plan.prices}
)
# The only shapes a subscription to each plan may take: (interval, interval_count).
ALLOWED_SHAPES: Mapping[str, frozenset[tuple[str, int]]] = MappingProxyType(
    {
        plan.code: frozenset((price.interval.value, 1) for price in plan.prices)
        for plan in PLANS.values()
        if plan.sold
    }
)


def shape_problem(*, plan: str | None, interval: str | None, interval_count: int) -> str | None:
    """Why a subscription in this shape must not be granted its plan, or None if it is fine."""
    if plan is None or plan not in ALLOWED_SHAPES:
        return "its price belongs to no plan in the catalog"
    if (interval, interval_count) not in ALLOWED_SHAPES[plan]:
        every = f"every {interval_count} {interval}s" if interval_count != 1 else f"per {interval}"
        if plan == STARTER.code:
            return f"Starter is sold only yearly, but this subscription is billed {every}"
        return f"{PLANS[plan].name} is not sold billed {every}"
    return None


class Standing(StrEnum):
    """Where a workspace stands with its payments."""

    NONE = "none"  # never subscribed, cancelled, or refused: the evaluation level
    ACTIVE = "active"
    GRACE = "grace"  # past due, still served for GRACE_PERIOD
    LAPSED = "lapsed"  # past due for longer than the grace period


def standing_of(
    *, status: str, past_due_since: datetime | None, now: datetime
) -> tuple[Standing, datetime | None]:
    """The standing a Stripe subscription status gives, and when a grace period ends."""
    if status in PAYING_STATUSES:
        return Standing.ACTIVE, None
    if status in PAST_DUE_STATUSES:
        grace_ends = (past_due_since or now) + GRACE_PERIOD
        return (Standing.GRACE if now < grace_ends else Standing.LAPSED), grace_ends
    return Standing.NONE, None


@dataclass(frozen=True)
class Entitlements:
    """What a workspace may do today, and why."""

    plan: Plan
    standing: Standing
    grace_ends: datetime | None = None
    # Why the workspace is not on its subscribed plan (flagged, lapsed), for the pages.
    note: str = ""

    @property
    def external_sending(self) -> bool:
        return self.plan.external_sending and self.standing in (Standing.ACTIVE, Standing.GRACE)

    def limit(self, resource: str) -> int:
        return int(getattr(self.plan, resource))

    def daily_grant(self, tiers: list[str]) -> int:
        """Credits granted for one day to a workspace whose domains are in these tiers."""
        if not self.external_sending:
            return 0
        counted = tiers[: self.plan.domains]
        return sum(self.plan.daily_credits.get(tier, 0) for tier in counted)


def entitlements_resolve(
    *,
    plan: str | None,
    status: str,
    past_due_since: datetime | None,
    flagged: bool,
    comp_plan: str | None,
    now: datetime,
    unpaid_plan: str = EVALUATION.code,
) -> Entitlements:
    """The entitlements a subscription (and any staff-granted plan) gives at `now`.

    `unpaid_plan` is what a workspace gets without a paid plan: the evaluation level, or on an
    installation that does not sell plans (one company hosting it for itself) a full plan."""
    standing, grace_ends = standing_of(status=status, past_due_since=past_due_since, now=now)
    served = standing in (Standing.ACTIVE, Standing.GRACE)
    if plan is not None and plan in PLANS and not flagged and served:
        return Entitlements(PLANS[plan], standing, grace_ends)
    if comp_plan is not None and comp_plan in PLANS:
        return Entitlements(PLANS[comp_plan], Standing.ACTIVE, note="granted by support")
    if unpaid_plan != EVALUATION.code and unpaid_plan in PLANS:
        return Entitlements(PLANS[unpaid_plan], Standing.ACTIVE)
    if flagged and plan is not None:
        note = "the subscription is under review by support"
    elif standing == Standing.LAPSED:
        note = "payment is overdue and the grace period has ended"
    else:
        note = ""
    return Entitlements(EVALUATION, standing, grace_ends, note=note)
