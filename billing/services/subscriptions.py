"""Buying, changing and reading subscriptions: Stripe Checkout, the Customer Portal, webhooks.

The server decides what may be bought: a Starter price billed other than yearly is refused before
anything is sent to Stripe. What Stripe reports back is checked again (a subscription can be
created behind the platform's back, in the dashboard or the API), and one in a forbidden shape
is flagged for staff and granted nothing.
"""

import logging
from datetime import UTC, datetime
from typing import Any

import stripe
from django.db import transaction
from django.utils import timezone
from djstripe.models import Customer
from djstripe.models import Subscription as DjSubscription

from accounts.models import Role, User, Workspace
from accounts.services import audit_log_record
from billing.models import BillingAccount
from billing.plans import PAST_DUE_STATUSES, PAYING_STATUSES, PLANS, shape_problem
from billing.services.catalog import catalog_id, price_info, price_resolve, stripe_key
from config.celery import task_enqueue
from config.errors import ApplicationError, PermissionDenied

logger = logging.getLogger(__name__)

CURRENT_STATUSES = PAYING_STATUSES | PAST_DUE_STATUSES


def _require_billing_role(workspace: Workspace, user: User) -> None:
    membership = workspace.memberships.filter(user=user).first()
    if membership is None or not membership.has_role(Role.ADMIN):
        raise PermissionDenied("Only owners and admins can change the plan.")


def billing_account_for(workspace: Workspace, *, lock: bool = False) -> BillingAccount:
    rows = BillingAccount.objects.select_for_update() if lock else BillingAccount.objects
    account, _ = rows.get_or_create(workspace=workspace)
    return account


def _customer_for(workspace: Workspace, key: str) -> Customer:
    customer, _ = Customer.get_or_create(
        subscriber=workspace, api_key=key, metadata={"workspace": workspace.public_id}
    )
    BillingAccount.objects.update_or_create(
        workspace=workspace, defaults={"stripe_customer_id": customer.id}
    )
    return customer


def checkout_start(
    *, workspace: Workspace, actor: User, price: str, success_url: str, cancel_url: str
) -> str:
    """Open a Stripe Checkout session for one of the catalog's prices; returns its URL.

    Starter is sold only yearly: any other Starter price is refused here, before Stripe hears
    of it."""
    _require_billing_role(workspace, actor)
    key = stripe_key()
    info = price_resolve(price)
    problem = shape_problem(
        plan=info.plan, interval=info.interval, interval_count=info.interval_count
    )
    if problem:
        message = f"This price cannot be bought: {problem}."
        if info.plan == "starter":
            message = (
                "Starter is sold only as a yearly plan ($12 a year): a $1 monthly charge would "
                "lose a third of it to card fees. Choose the yearly price, or Pro for monthly "
                "billing."
            )
        raise ApplicationError(message, code="plan_shape_refused", fields={"price": [message]})
    account = BillingAccount.objects.filter(workspace=workspace).first()
    if account and account.subscription_id and account.status in CURRENT_STATUSES:
        raise ApplicationError(
            "This workspace already has a subscription: change or cancel it in the billing portal.",
            code="subscription_exists",
        )
    customer = _customer_for(workspace, key)
    session = stripe.checkout.Session.create(
        api_key=key,
        mode="subscription",
        customer=customer.id,
        client_reference_id=workspace.public_id,
        line_items=[{"price": info.stripe_id, "quantity": 1}],
        subscription_data={"metadata": {"workspace": workspace.public_id}},
        metadata={"workspace": workspace.public_id},
        success_url=success_url,
        cancel_url=cancel_url,
    )
    audit_log_record(
        action="billing.checkout",
        actor=actor,
        obj=workspace,
        workspace=workspace,
        after={"price": info.stripe_id, "plan": info.plan, "interval": info.interval},
    )
    return str(session["url"])


def portal_open(*, workspace: Workspace, actor: User, return_url: str) -> str:
    """A Customer Portal session (cards, invoices, plan switches, cancellation); its URL."""
    _require_billing_role(workspace, actor)
    key = stripe_key()
    account = BillingAccount.objects.filter(workspace=workspace).first()
    if account is None or not account.stripe_customer_id:
        raise ApplicationError(
            "There is nothing to manage yet: choose a plan first.", code="no_customer"
        )
    params: dict[str, Any] = {"customer": account.stripe_customer_id, "return_url": return_url}
    configuration = catalog_id("portal")
    if configuration:
        params["configuration"] = configuration
    session = stripe.billing_portal.Session.create(api_key=key, **params)
    return str(session["url"])


def _workspace_of(subscription: DjSubscription) -> Workspace | None:
    customer = subscription.customer
    subscriber = getattr(customer, "subscriber", None) if customer else None
    if isinstance(subscriber, Workspace):
        return subscriber
    public_id = ((subscription.stripe_data or {}).get("metadata") or {}).get("workspace")
    return Workspace.objects.filter(public_id=public_id).first() if public_id else None


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    return None


def _shape(data: dict[str, Any]) -> tuple[str | None, str | None, int, str | None]:
    """(plan, interval, interval_count, problem) of a subscription's items."""
    items = ((data.get("items") or {}).get("data")) or []
    if len(items) != 1:
        return None, None, 1, f"it has {len(items)} items instead of one plan"
    item = items[0]
    price = item.get("price") or item.get("plan") or {}
    info = price_info(price)
    if int(item.get("quantity") or 1) != 1:
        return info.plan, info.interval, info.interval_count, "its quantity is not 1"
    problem = shape_problem(
        plan=info.plan, interval=info.interval, interval_count=info.interval_count
    )
    return info.plan, info.interval, info.interval_count, problem


@transaction.atomic
def subscription_apply(*, subscription: DjSubscription, now: datetime | None = None) -> None:
    """Read a synced subscription into the workspace's billing state (safe to run any number
    of times: the result depends only on the subscription)."""
    now = now or timezone.now()
    workspace = _workspace_of(subscription)
    if workspace is None:
        logger.warning("Stripe subscription %s belongs to no workspace", subscription.id)
        return
    data = subscription.stripe_data or {}
    status = str(data.get("status") or "")
    account = billing_account_for(workspace, lock=True)
    if (
        account.subscription_id
        and account.subscription_id != subscription.id
        and account.status in CURRENT_STATUSES
        and status not in CURRENT_STATUSES
    ):
        return  # an old, ended subscription must not overwrite the current one
    plan, interval, count, problem = _shape(data)
    before = _state(account)
    items = (data.get("items") or {}).get("data") or [{}]
    account.subscription_id = subscription.id
    account.stripe_customer_id = getattr(subscription.customer, "id", "") or ""
    account.plan = plan or ""
    account.interval = interval or ""
    account.interval_count = count
    account.status = status
    account.current_period_end = _timestamp(
        data.get("current_period_end") or items[0].get("current_period_end")
    )
    account.cancel_at_period_end = bool(data.get("cancel_at_period_end"))
    if status in PAST_DUE_STATUSES:
        account.past_due_since = account.past_due_since or now
    else:
        account.past_due_since = None
    if problem and status in CURRENT_STATUSES:
        if account.flagged_reason != problem:
            account.flagged_reason = problem
            account.flagged_at = now
            audit_log_record(
                action="billing.subscription_flagged",
                actor=None,
                obj=workspace,
                workspace=workspace,
                reason=f"Subscription {subscription.id}: {problem}",
                after={"subscription": subscription.id, "plan": plan, "interval": interval},
            )
            subject = f"Subscription flagged: {workspace.name}"
            body = (
                f"Stripe subscription {subscription.id} of workspace {workspace.public_id} is "
                f"not granted its plan: {problem}. Review it in the console (billing accounts, "
                "flagged)."
            )
            transaction.on_commit(
                lambda: task_enqueue("reputation.tasks.staff_alert_send", subject, body)
            )
    elif account.flagged_reason:
        account.flagged_reason = ""
        account.flagged_at = None
    account.updated_at = now
    account.save()
    after = _state(account)
    if after != before:
        audit_log_record(
            action="billing.subscription_update",
            actor=None,
            obj=workspace,
            workspace=workspace,
            before=before,
            after=after,
        )


def _state(account: BillingAccount) -> dict[str, Any]:
    return {
        "plan": account.plan,
        "interval": account.interval,
        "status": account.status,
        "flagged": bool(account.flagged_reason),
        "past_due_since": account.past_due_since.isoformat() if account.past_due_since else None,
    }


def subscription_refresh(*, subscription_id: str) -> None:
    """Fetch a subscription from Stripe, sync it into dj-stripe, and apply it."""
    key = stripe_key()
    data = stripe.Subscription.retrieve(subscription_id, api_key=key)
    synced = DjSubscription.sync_from_stripe_data(data, api_key=key)
    subscription_apply(subscription=synced)


def invoice_subscription_id(invoice: dict[str, Any]) -> str | None:
    """The subscription an invoice bills (its place moved in newer API versions)."""
    direct = invoice.get("subscription")
    if isinstance(direct, dict):
        return str(direct.get("id"))
    if direct:
        return str(direct)
    parent = (invoice.get("parent") or {}).get("subscription_details") or {}
    found = parent.get("subscription")
    return str(found) if found else None


@transaction.atomic
def plan_comp_set(*, workspace: Workspace, actor: User, plan: str, reason: str) -> BillingAccount:
    """Staff grant (or, with plan "", withdraw) a complimentary plan, used when nothing is paid."""
    if plan and plan not in PLANS:
        raise ApplicationError(f"Unknown plan {plan!r}.", fields={"plan": ["Unknown plan."]})
    if not reason.strip():
        raise ApplicationError("Say why.", fields={"reason": ["A reason is required."]})
    account = billing_account_for(workspace, lock=True)
    before = {"comp_plan": account.comp_plan}
    account.comp_plan = plan
    account.comp_reason = reason.strip()
    account.updated_at = timezone.now()
    account.save(update_fields=["comp_plan", "comp_reason", "updated_at"])
    audit_log_record(
        action="billing.comp_plan",
        actor=actor,
        obj=workspace,
        workspace=workspace,
        reason=reason,
        before=before,
        after={"comp_plan": plan},
    )
    return account
