"""The billing page, Stripe Checkout and the Customer Portal (Stripe-hosted), and the landing
page's "Start for $12 a year"."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.decorators import workspace_view
from accounts.http import AuthedRequest, WorkspaceRequest
from accounts.models import Role
from accounts.selectors import membership_list_for_user
from billing import selectors
from billing.plans import PLANS, PRICES, STARTER, Standing
from billing.services.subscriptions import checkout_start, portal_open

# Stripe's subscription statuses in the customer's words.
STATUS_LABELS = {
    "active": "Active",
    "trialing": "Trial",
    "past_due": "Payment failed",
    "unpaid": "Unpaid",
    "canceled": "Cancelled",
    "incomplete": "Awaiting payment",
    "incomplete_expired": "Not paid",
    "paused": "Paused",
}


def _absolute(request: HttpRequest, name: str, *args: str) -> str:
    return request.build_absolute_uri(reverse(name, args=args))


@workspace_view()
def billing(request: WorkspaceRequest) -> HttpResponse:
    workspace = request.workspace
    entitlements = selectors.entitlements_get(workspace=workspace)
    account = selectors.billing_account_of(workspace)
    usage = selectors.usage_get(workspace=workspace)
    history = Paginator(selectors.credit_entries_list(workspace=workspace), 20)
    page = history.get_page(request.GET.get("page"))
    plans = [plan for plan in PLANS.values() if plan.sold]
    return render(
        request,
        "billing/billing.html",
        {
            "entitlements": entitlements,
            "account": account,
            "subscribed": bool(account and account.subscription_id and account.status),
            "usage": [
                ("Domains", usage["domains"], entitlements.plan.domains),
                ("Mailboxes", usage["mailboxes"], entitlements.plan.mailboxes),
                ("Members", usage["seats"], entitlements.plan.seats),
            ],
            "plans": plans,
            "balance": selectors.credit_balance_get(workspace=workspace),
            "entries": page,
            "invoices": selectors.invoices_list(workspace=workspace),
            "can_manage": request.membership.has_role(Role.ADMIN),
            "billing_enabled": settings.BILLING_ENABLED,
            "status_label": STATUS_LABELS.get(account.status, account.status) if account else "",
            "starter_credits": STARTER.daily_credits["premium"],
            "in_grace": entitlements.standing == Standing.GRACE,
            "lapsed": entitlements.standing == Standing.LAPSED,
        },
    )


@require_POST
@workspace_view(Role.ADMIN)
def checkout(request: WorkspaceRequest) -> HttpResponse:
    ws = request.workspace.public_id
    url = checkout_start(
        workspace=request.workspace,
        actor=request.user,
        price=request.POST.get("price", ""),
        success_url=_absolute(request, "billing_done", ws) + "?session={CHECKOUT_SESSION_ID}",
        cancel_url=_absolute(request, "billing", ws),
    )
    return redirect(url)


@require_POST
@workspace_view(Role.ADMIN)
def portal(request: WorkspaceRequest) -> HttpResponse:
    url = portal_open(
        workspace=request.workspace,
        actor=request.user,
        return_url=_absolute(request, "billing", request.workspace.public_id),
    )
    return redirect(url)


@workspace_view()
def done(request: WorkspaceRequest) -> HttpResponse:
    messages.success(
        request,
        "Thank you. Your plan shows here as soon as Stripe confirms the payment, usually within "
        "a few seconds; reload if it has not yet.",
    )
    return redirect("billing", request.workspace.public_id)


@login_required
def start(request: AuthedRequest, price: str) -> HttpResponse:
    """Landing page -> sign up or in -> this page -> Stripe Checkout for the chosen price."""
    if price not in PRICES:
        raise Http404("No such price.")
    memberships = [m for m in membership_list_for_user(user=request.user) if m.has_role(Role.ADMIN)]
    return render(
        request,
        "billing/start.html",
        {"price": PRICES[price], "plan": PLANS[PRICES[price].plan], "memberships": memberships},
    )
