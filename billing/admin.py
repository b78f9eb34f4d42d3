"""The billing console: subscriptions as Stripe reports them (flagged ones easy to find),
complimentary plans, the credits ledger and its hand adjustments, and the unit economics page.

Subscription state comes from Stripe's webhooks and credits change only through the ledger's
services, so every row here is read-only: staff change things with actions that ask why and
call the services, which write the audit log. dj-stripe's own admin (its `Stripe` section) stays
registered beside this one for Stripe's objects themselves."""

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from accounts.models import User
from billing.economics import (
    EconomicsTotal,
    PlanEconomics,
    dollars,
    economics_total,
    percent,
    worked_example,
)
from billing.models import BillingAccount, CatalogEntry, CreditAccount, CreditEntry
from billing.plans import PLANS, STARTER, Interval, Plan, Price
from billing.selectors import entitlements_get, infra_cents_per_workspace_month, paying_counts
from billing.services.credits import credits_adjust
from billing.services.subscriptions import plan_comp_set
from config.admin_actions import Outcome, ReasonedAction, ReasonForm, ServiceOwnedAdmin

AUDIT_NOTE = "The reason is recorded in the audit log with your name."
# Stripe's subscription statuses, fixed: the filter needs no DISTINCT over the table.
STRIPE_STATUSES = (
    "active",
    "trialing",
    "past_due",
    "unpaid",
    "canceled",
    "incomplete",
    "incomplete_expired",
    "paused",
)
SOLD_PLANS = tuple((plan.code, plan.name) for plan in PLANS.values() if plan.sold)
WORKED_EXAMPLE_CUSTOMERS = 1000
# An adjustment is a correction by hand, not a bulk grant (the column is a 32-bit integer).
ADJUST_LIMIT = 1_000_000


# --- Actions that ask for more than a reason -------------------------------------------------

# (row, staff user, cleaned form with "reason") -> an Outcome to show, or anything else
FormCall = Callable[[Any, Any, dict[str, Any]], object]


class ReasonedFormAction(ReasonedAction):
    """A reasoned action whose page asks for more than the reason (a plan, an amount).

    `form` is a ReasonForm with the extra fields; `call` gets the row, the staff member and the
    cleaned form (the reason under "reason"). Refusals are shown per row, as ReasonedAction's."""

    def __init__(self, *, form: type[ReasonForm], call: FormCall, **kwargs: Any) -> None:
        # `call` (row, staff, reason) stays usable: it passes the reason as the whole form.
        super().__init__(
            call=lambda row, staff, reason: call(row, staff, {"reason": reason}), **kwargs
        )
        self.form_class, self.form_call = form, call

    def call_row(self, row: Any, staff: Any, data: dict[str, Any]) -> object:
        return self.form_call(row, staff, data)


class CompPlanForm(ReasonForm):
    plan = forms.ChoiceField(
        choices=SOLD_PLANS,
        label="Plan",
        help_text="Used while the workspace pays for nothing (a paid plan comes first).",
    )
    field_order = ["plan", "reason"]


class CreditAdjustForm(ReasonForm):
    amount = forms.IntegerField(
        min_value=-ADJUST_LIMIT,
        max_value=ADJUST_LIMIT,
        label="Credits",
        help_text="Positive adds earned credits; negative removes credits (never below zero).",
    )
    field_order = ["amount", "reason"]

    def clean_amount(self) -> int:
        amount = int(self.cleaned_data["amount"])
        if amount == 0:
            raise forms.ValidationError("An adjustment of 0 credits changes nothing.")
        return amount


def _comp_grant(account: BillingAccount, staff: User, data: dict[str, Any]) -> Outcome:
    plan_comp_set(
        workspace=account.workspace, actor=staff, plan=data["plan"], reason=data["reason"]
    )
    return Outcome(f"{account.workspace.name}: complimentary {PLANS[data['plan']].name} granted.")


def _comp_withdraw(account: BillingAccount, staff: User, reason: str) -> BillingAccount:
    return plan_comp_set(workspace=account.workspace, actor=staff, plan="", reason=reason)


def _credits_adjust(account: CreditAccount, staff: User, data: dict[str, Any]) -> Outcome:
    entry = credits_adjust(
        workspace=account.workspace, amount=data["amount"], actor=staff, reason=data["reason"]
    )
    return Outcome(
        f"{account.workspace.name}: {entry.amount:+,d} credits; the balance is now "
        f"{entry.balance_after:,d}."
    )


# --- Filters with fixed choices ---------------------------------------------------------------


class ChoiceFilter(admin.SimpleListFilter):
    """A filter on one field whose values are known (the catalog, Stripe's statuses)."""

    field = ""
    options: tuple[tuple[str, str], ...] = ()

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(self.options)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(**{self.field: "" if value == "none" else value})


class PlanFilter(ChoiceFilter):
    title = parameter_name = field = "plan"
    options = (*SOLD_PLANS, ("none", "No plan"))


class StatusFilter(ChoiceFilter):
    title = parameter_name = field = "status"
    options = tuple((status, status.replace("_", " ")) for status in STRIPE_STATUSES)


class IntervalFilter(ChoiceFilter):
    title = "billing interval"
    parameter_name = field = "interval"
    options = ((Interval.MONTH.value, "monthly"), (Interval.YEAR.value, "yearly"))


class CompPlanFilter(ChoiceFilter):
    title = "complimentary plan"
    parameter_name = field = "comp_plan"
    options = (*SOLD_PLANS, ("none", "None"))


class FlaggedFilter(admin.SimpleListFilter):
    """Subscriptions Stripe reports in a shape the catalog does not sell: granted nothing until
    staff look (the reason says what is wrong)."""

    title = "flagged for review"
    parameter_name = "flagged"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Flagged"), ("no", "Not flagged")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[BillingAccount]
    ) -> QuerySet[BillingAccount]:
        if self.value() == "yes":
            return queryset.exclude(flagged_reason="")
        if self.value() == "no":
            return queryset.filter(flagged_reason="")
        return queryset


# --- Subscriptions ----------------------------------------------------------------------------


@admin.register(BillingAccount)
class BillingAccountAdmin(ServiceOwnedAdmin):
    list_display = [
        "workspace_name",
        "plan_name",
        "billed",
        "status",
        "current_period_end",
        "flag",
        "comp_plan_name",
        "updated_at",
    ]
    list_filter = [FlaggedFilter, PlanFilter, StatusFilter, IntervalFilter, CompPlanFilter]
    search_fields = [
        "workspace__name",
        "workspace__public_id",
        "=stripe_customer_id",
        "=subscription_id",
    ]
    list_select_related = ["workspace"]
    ordering = ["-updated_at"]
    show_full_result_count = False
    fieldsets = [
        (None, {"fields": ["workspace", "workspace_public_id", "entitlements"]}),
        (
            "Flagged for review",
            {"fields": ["flagged_reason", "flagged_at"]},
        ),
        (
            "Subscription (from Stripe)",
            {
                "fields": [
                    "plan",
                    "interval",
                    "interval_count",
                    "status",
                    "current_period_end",
                    "cancel_at_period_end",
                    "past_due_since",
                    "stripe_customer_id",
                    "subscription_id",
                    "stripe_objects",
                    "updated_at",
                ]
            },
        ),
        ("Complimentary plan", {"fields": ["comp_plan", "comp_reason"]}),
        ("History", {"fields": ["audit_trail"]}),
    ]
    readonly_fields = ["workspace_public_id", "entitlements", "stripe_objects", "audit_trail"]
    actions = [
        ReasonedFormAction(
            name="comp_grant",
            description="Grant a complimentary plan",
            done="workspace(s) granted a complimentary plan",
            form=CompPlanForm,
            call=_comp_grant,
            rows=lambda qs: qs.select_related("workspace"),
            note=AUDIT_NOTE + " The workspace gets the plan whenever it pays for nothing.",
        ),
        ReasonedAction(
            name="comp_withdraw",
            description="Withdraw the complimentary plan",
            done="complimentary plan(s) withdrawn",
            call=_comp_withdraw,
            rows=lambda qs: qs.exclude(comp_plan="").select_related("workspace"),
            nothing="None of the selected workspaces has a complimentary plan.",
            note=AUDIT_NOTE + " A workspace that pays for nothing goes back to the evaluation "
            "level at once.",
        ),
    ]

    def get_urls(self) -> list[URLPattern]:
        economics = self.admin_site.admin_view(self.economics_view)
        return [path("economics/", economics, name="billing_economics"), *super().get_urls()]

    def console_pages(self, request: HttpRequest) -> list[dict[str, Any]]:
        """The unit economics page, listed in the Billing section (no queries: every page's
        navigation lists it)."""
        if not self.has_view_permission(request):
            return []
        return [
            _console_entry("UnitEconomics", "Unit economics", reverse("admin:billing_economics"))
        ]

    def console_counts(self, request: HttpRequest) -> list[dict[str, Any]]:
        """Flagged subscriptions, counted on the console's index (one indexed query)."""
        if not self.has_view_permission(request):
            return []
        flagged = BillingAccount.objects.exclude(flagged_reason="").count()
        url = reverse("admin:billing_billingaccount_changelist") + "?flagged=yes"
        name = (
            format_html("<strong>Flagged subscriptions: {}</strong>", flagged)
            if flagged
            else "Flagged subscriptions: none"
        )
        return [_console_entry("FlaggedSubscriptions", name, url)]

    def economics_view(self, request: HttpRequest) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        request.current_app = self.admin_site.name
        context = {
            **self.admin_site.each_context(request),
            "title": "Unit economics",
            "opts": self.opts,
            **economics_page(),
        }
        return TemplateResponse(request, "admin/billing/economics.html", context)

    @admin.display(description="Workspace", ordering="workspace__name")
    def workspace_name(self, account: BillingAccount) -> str:
        return account.workspace.name

    @admin.display(description="Public id")
    def workspace_public_id(self, account: BillingAccount) -> str:
        return account.workspace.public_id

    @admin.display(description="Plan", ordering="plan")
    def plan_name(self, account: BillingAccount) -> str:
        return _plan_name(account.plan)

    @admin.display(description="Billed", ordering="interval")
    def billed(self, account: BillingAccount) -> str:
        if not account.interval:
            return "-"
        if account.interval_count != 1:
            return f"every {account.interval_count} {account.interval}s"
        return f"{account.interval}ly"

    @admin.display(description="Flagged for review", ordering="flagged_at")
    def flag(self, account: BillingAccount) -> str:
        if not account.flagged_reason:
            return "-"
        return format_html(
            '<strong style="color:var(--error-fg)" title="{}">&#9873; Flagged</strong> {}',
            account.flagged_reason,
            Truncator(account.flagged_reason).chars(90),
        )

    @admin.display(description="Complimentary plan", ordering="comp_plan")
    def comp_plan_name(self, account: BillingAccount) -> str:
        return _plan_name(account.comp_plan)

    @admin.display(description="What the workspace gets now")
    def entitlements(self, account: BillingAccount) -> str:
        now = entitlements_get(workspace=account.workspace)
        text = f"{now.plan.name} ({now.standing.value})"
        return f"{text}: {now.note}" if now.note else text

    @admin.display(description="In Stripe")
    def stripe_objects(self, account: BillingAccount) -> str:
        links = [
            (reverse(f"admin:djstripe_{model}_changelist"), stripe_id, label, stripe_id)
            for label, model, stripe_id in (
                ("Customer", "customer", account.stripe_customer_id),
                ("Subscription", "subscription", account.subscription_id),
            )
            if stripe_id
        ]
        return format_html_join(" · ", '<a href="{}?q={}">{} {}</a>', links) or "-"

    @admin.display(description="Audit trail")
    def audit_trail(self, account: BillingAccount) -> str:
        url = reverse("admin:accounts_auditlog_changelist")
        return format_html(
            '<a href="{}?workspace__id__exact={}&action__startswith=billing.">'
            "The workspace's billing entries in the audit log</a>",
            url,
            account.workspace_id,
        )


def _plan_name(code: str) -> str:
    if not code:
        return "-"
    plan = PLANS.get(code)
    return plan.name if plan else code


def _console_entry(object_name: str, name: str, url: str) -> dict[str, Any]:
    """A link in the console's app list, shaped like a model's entry."""
    return {
        "model": None,
        "name": name,
        "object_name": object_name,
        "perms": {"view": True},
        "admin_url": url,
        "add_url": None,
        "view_only": True,
    }


# --- Credits ----------------------------------------------------------------------------------


@admin.register(CreditAccount)
class CreditAccountAdmin(ServiceOwnedAdmin):
    list_display = ["workspace_name", "balance", "granted", "earned", "last_grant_day", "ledger"]
    list_filter = ["last_grant_day"]
    search_fields = ["workspace__name", "workspace__public_id"]
    list_select_related = ["workspace"]
    show_full_result_count = False
    fields = ["workspace", "balance", "granted", "earned", "last_grant_day", "ledger"]
    readonly_fields = ["balance", "ledger"]
    actions = [
        ReasonedFormAction(
            name="credits_adjust",
            description="Adjust credits",
            done="credit account(s) adjusted",
            form=CreditAdjustForm,
            call=_credits_adjust,
            rows=lambda qs: qs.select_related("workspace"),
            note=AUDIT_NOTE + " It is also the ledger entry's reason, which the customer sees.",
        )
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[CreditAccount]:
        return super().get_queryset(request).annotate(total=F("granted") + F("earned"))

    @admin.display(description="Workspace", ordering="workspace__name")
    def workspace_name(self, account: CreditAccount) -> str:
        return account.workspace.name

    @admin.display(description="Balance", ordering="total")
    def balance(self, account: CreditAccount) -> int:
        return account.balance

    @admin.display(description="Ledger")
    def ledger(self, account: CreditAccount) -> str:
        url = reverse("admin:billing_creditentry_changelist")
        return format_html(
            '<a href="{}?workspace__id__exact={}">Entries</a>', url, account.workspace_id
        )


@admin.register(CreditEntry)
class CreditEntryAdmin(ServiceOwnedAdmin):
    list_display = [
        "created_at",
        "workspace_name",
        "kind",
        "amount",
        "balance_after",
        "reason",
        "reference",
        "actor",
    ]
    list_filter = ["kind", "created_at"]
    search_fields = ["workspace__name", "workspace__public_id", "reference"]
    list_select_related = ["workspace", "actor"]
    show_full_result_count = False

    @admin.display(description="Workspace", ordering="workspace__name")
    def workspace_name(self, entry: CreditEntry) -> str:
        return entry.workspace.name


@admin.register(CatalogEntry)
class CatalogEntryAdmin(ServiceOwnedAdmin):
    """The Stripe ids `manage.py billing_sync_plans` wrote for each catalog key."""

    list_display = ["key", "stripe_id", "livemode", "updated_at"]
    list_filter = ["livemode"]
    search_fields = ["key", "stripe_id"]


# --- Unit economics ---------------------------------------------------------------------------

COLUMNS = (
    ("customers", "Active"),
    ("charges", "Charges a year"),
    ("revenue", "Revenue a year"),
    ("revenue_month", "Revenue a month"),
    ("fee_per_charge", "Stripe fee per charge"),
    ("fees", "Stripe fees a year"),
    ("fee_share", "Fees, % of revenue"),
    ("infrastructure", "Infrastructure a year"),
    ("margin", "Margin a year"),
    ("margin_share", "Margin, %"),
)


@dataclass(frozen=True)
class EconomicsLine:
    """One row of the page's table: its label and cells as shown (label, value)."""

    label: str
    detail: str
    cells: list[tuple[str, str]]


def _share(share: Decimal | None) -> str:
    return percent(share) if share is not None else "-"


def _price_label(price: Price) -> str:
    return f"{dollars(price.amount_cents)} a {price.interval.value}"


def _cells(
    row: PlanEconomics | EconomicsTotal,
    *,
    fee_per_charge: str,
    fee_share: Decimal | None,
    margin_share: Decimal | None,
) -> list[tuple[str, str]]:
    values = {
        "customers": f"{row.customers:,d}",
        "charges": f"{row.charges:,d}",
        "revenue": dollars(row.revenue),
        "revenue_month": dollars(row.revenue_per_month),
        "fee_per_charge": fee_per_charge,
        "fees": dollars(row.fees),
        "fee_share": _share(fee_share),
        "infrastructure": dollars(row.infrastructure),
        "margin": dollars(row.margin),
        "margin_share": _share(margin_share),
    }
    return [(label, values[key]) for key, label in COLUMNS]


def _example_rows(yearly: PlanEconomics, monthly: PlanEconomics) -> list[tuple[str, str, str]]:
    def both(value: Callable[[PlanEconomics], str]) -> tuple[str, str]:
        return value(yearly), value(monthly)

    rows: list[tuple[str, tuple[str, str]]] = [
        ("Customers", both(lambda e: f"{e.customers:,d}")),
        ("Price", both(lambda e: f"{dollars(e.amount_cents)} a {e.interval}")),
        ("Charges a year", both(lambda e: f"{e.charges:,d}")),
        ("Revenue a year", both(lambda e: dollars(e.revenue))),
        ("Stripe fee per charge", both(lambda e: dollars(e.fee_per_charge))),
        ("Stripe fees a year", both(lambda e: dollars(e.fees))),
        ("Fees, % of revenue", both(lambda e: percent(e.fee_share))),
        ("Infrastructure a year", both(lambda e: dollars(e.infrastructure))),
        ("Margin a year", both(lambda e: dollars(e.margin))),
        ("Margin, %", both(lambda e: _share(e.margin_share))),
    ]
    return [(label, first, second) for label, (first, second) in rows]


def economics_page() -> dict[str, Any]:
    """What the unit economics page shows: each catalog price's paying workspaces over a year,
    the totals, and the same Starter customers billed yearly against billed monthly."""
    infra = infra_cents_per_workspace_month()
    counts = {(c.plan, c.interval): c.count for c in paying_counts()}
    lines: list[EconomicsLine] = []
    priced: list[PlanEconomics] = []
    plans: list[Plan] = [plan for plan in PLANS.values() if plan.sold]
    for plan in plans:
        for price in plan.prices:
            customers = counts.pop((plan.code, price.interval.value), 0)
            row = PlanEconomics(
                f"{plan.name}, billed {price.interval.value}ly",
                customers,
                price.amount_cents,
                price.interval.value,
                infra,
            )
            priced.append(row)
            # A price's shares are the same for any number of customers: shown even for none.
            unit = row.per_customer()
            lines.append(
                EconomicsLine(
                    row.label,
                    _price_label(price),
                    _cells(
                        row,
                        fee_per_charge=dollars(row.fee_per_charge),
                        fee_share=unit.fee_share,
                        margin_share=unit.margin_share,
                    ),
                )
            )
    total = economics_total(priced)
    # Starter's price a month (its only price is the yearly one: $12 a year is $1 a month).
    monthly_cents = round(STARTER.prices[0].monthly_cents)
    yearly, monthly = worked_example(
        customers=WORKED_EXAMPLE_CUSTOMERS, monthly_cents=monthly_cents, infra_cents_per_month=infra
    )
    return {
        "columns": [label for _, label in COLUMNS],
        "lines": lines,
        "total": EconomicsLine(
            "Total",
            "all prices",
            _cells(
                total,
                fee_per_charge="-",
                fee_share=total.fee_share,
                margin_share=total.margin_share,
            ),
        ),
        "unpriced": [
            f"{count} on {plan or 'no plan'} billed {interval or 'never'}"
            for (plan, interval), count in sorted(counts.items())
        ],
        "infra_month": dollars(infra),
        "infra_year": dollars(infra * 12),
        "example": {
            "customers": f"{WORKED_EXAMPLE_CUSTOMERS:,d}",
            "plan": STARTER.name,
            "monthly_price": dollars(monthly_cents),
            "yearly_price": dollars(yearly.amount_cents),
            "rows": _example_rows(yearly, monthly),
            "extra_fees": dollars(monthly.fees - yearly.fees),
            "extra_charges": f"{monthly.charges - yearly.charges:,d}",
        },
    }
