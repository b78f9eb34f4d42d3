"""Reads: what a workspace is entitled to, its billing state, invoices and credits."""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Count, QuerySet
from django.utils import timezone
from djstripe.models import Invoice

from accounts.models import Workspace
from billing.models import BillingAccount, CreditAccount, CreditEntry
from billing.plans import PAST_DUE_STATUSES, PAYING_STATUSES, Entitlements, entitlements_resolve
from sending.models import DomainStatus, Mailbox, SendingDomain


def billing_account_of(workspace: Workspace) -> BillingAccount | None:
    """The workspace's billing row, or None if it never had one (read afresh: a subscription
    can change under a long-lived workspace instance)."""
    return BillingAccount.objects.filter(workspace=workspace).first()


def entitlements_get(*, workspace: Workspace, now: datetime | None = None) -> Entitlements:
    """What the workspace may do now: its plan's limits and whether it may send externally."""
    return _resolve(billing_account_of(workspace), now or timezone.now())


def _resolve(account: BillingAccount | None, now: datetime) -> Entitlements:
    return entitlements_resolve(
        plan=(account.plan or None) if account else None,
        status=account.status if account else "",
        past_due_since=account.past_due_since if account else None,
        flagged=bool(account and account.flagged_reason),
        comp_plan=(account.comp_plan or None) if account else None,
        now=now,
        unpaid_plan=settings.BILLING_UNPAID_PLAN,
    )


def external_sending_blocked(*, workspace_ids: set[int], now: datetime | None = None) -> set[int]:
    """Which of these workspaces may not send campaigns now (one query for the lot)."""
    now = now or timezone.now()
    rows = BillingAccount.objects.filter(workspace_id__in=workspace_ids)
    accounts = {account.workspace_id: account for account in rows}
    return {
        workspace_id
        for workspace_id in workspace_ids
        if not _resolve(accounts.get(workspace_id), now).external_sending
    }


def usage_get(*, workspace: Workspace) -> dict[str, int]:
    """How much of each limited resource the workspace uses (retired domains do not count)."""
    domains = SendingDomain.objects.filter(workspace=workspace).exclude(status=DomainStatus.RETIRED)
    return {
        "domains": domains.count(),
        "mailboxes": Mailbox.objects.filter(domain__in=domains).count(),
        "seats": workspace.memberships.count(),
    }


def credit_balance_get(*, workspace: Workspace) -> int:
    account = CreditAccount.objects.filter(workspace=workspace).first()
    return account.balance if account else 0


def credit_entries_list(*, workspace: Workspace) -> QuerySet[CreditEntry]:
    return CreditEntry.objects.filter(workspace=workspace).order_by("-id")


def invoices_list(*, workspace: Workspace, limit: int = 24) -> list[dict]:
    """The workspace's invoices as dj-stripe synced them, newest first."""
    invoices = Invoice.objects.filter(customer__subscriber=workspace).order_by("-created")
    rows = []
    for invoice in invoices[:limit]:
        data = invoice.stripe_data or {}
        rows.append(
            {
                "number": data.get("number") or invoice.id,
                "created": invoice.created,
                "amount": (data.get("amount_paid") or data.get("amount_due") or 0) / 100,
                "currency": (data.get("currency") or "usd").upper(),
                "status": data.get("status") or "",
                "url": data.get("hosted_invoice_url") or "",
            }
        )
    return rows


@dataclass(frozen=True)
class PlanCount:
    plan: str
    interval: str
    count: int


def paying_counts() -> list[PlanCount]:
    """Workspaces subscribed to each paid plan and billing interval (paying, or past due and
    still expected to pay); flagged subscriptions are left out."""
    rows = (
        BillingAccount.objects.filter(
            flagged_reason="", status__in=[*PAYING_STATUSES, *PAST_DUE_STATUSES]
        )
        .exclude(plan="")
        .values("plan", "interval")
        .annotate(n=Count("id"))
        .order_by("plan", "interval")
    )
    return [PlanCount(row["plan"], row["interval"], row["n"]) for row in rows]


def infra_cents_per_workspace_month() -> int:
    return int(settings.BILLING_INFRA_CENTS_PER_WORKSPACE_MONTH)
