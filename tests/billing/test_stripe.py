"""Buying, paying and falling behind, against a local Stripe (localstripe behind a recording
proxy that adds Prices, Checkout and the Portal) and signed webhooks through dj-stripe."""

import json
from datetime import timedelta
from typing import Any

import pytest
import stripe
from django.core.management import call_command
from django.utils import timezone
from djstripe.models import Event, Price, WebhookEndpoint, WebhookEventTrigger

from accounts.models import AuditLog
from billing import selectors
from billing.models import BillingAccount, CatalogEntry
from billing.plans import EVALUATION, PRO, STARTER
from billing.selectors import entitlements_get
from billing.services.catalog import catalog_id
from billing.services.entitlements import external_sending_refusal
from billing.services.subscriptions import _customer_for
from config.errors import ApplicationError
from sending.models import Mailbox, MessageKind
from sending.services.outbound import MessageDraft, messages_reserve
from tests.conftest import token_client
from tests.servers.stripe_events import event, event_body, signed_headers

pytestmark = pytest.mark.django_db


def _webhook(client, evt: dict[str, Any], *, secret: str | None = None):
    endpoint = WebhookEndpoint.objects.get()
    body = event_body(evt)
    headers = signed_headers(body, secret or endpoint.secret)
    return client.post(
        f"/stripe/webhook/{endpoint.djstripe_uuid}/",
        data=body,
        content_type="application/json",
        headers=headers,
    )


def _customer(owner) -> str:
    return _customer_for(owner.workspace, stripe.api_key).id


def _subscribed(client, server, owner, price_key_or_id: str) -> dict[str, Any]:
    price_id = catalog_id(f"price:{price_key_or_id}") or price_key_or_id
    subscription = server.subscribe(_customer(owner), price_id)
    assert _webhook(client, event("customer.subscription.created", subscription)).status_code == 200
    return subscription


def test_sync_plans_creates_the_catalog_once(stripe_api, settings):
    stripe_api.reset()
    settings.STRIPE_TEST_SECRET_KEY = stripe_api.api_key
    settings.BILLING_ENABLED = True
    call_command("billing_sync_plans", stdout=open("/dev/null", "w"))  # noqa: SIM115
    prices = {
        r.params["lookup_key"]: r.params for r in stripe_api.requests_to("/v1/prices", "POST")
    }
    assert {key: (p["unit_amount"], p["recurring"]["interval"]) for key, p in prices.items()} == {
        "starter_yearly": ("1200", "year"),
        "pro_monthly": ("1000", "month"),
        "pro_yearly": ("10000", "year"),
    }
    (portal,) = stripe_api.requests_to("/v1/billing_portal/configurations", "POST")
    products = portal.params["features"]["subscription_update"]["products"]
    starter = next(p for p in products if p["product"] == catalog_id("product:starter"))
    assert starter["prices"] == [catalog_id("price:starter_yearly")]  # no monthly Starter
    assert WebhookEndpoint.objects.get().secret.startswith("whsec_")
    assert Price.objects.count() == 3
    stripe_api.clear()
    call_command("billing_sync_plans", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert not stripe_api.requests_to("/v1/prices", "POST")
    assert not stripe_api.requests_to("/v1/products", "POST")
    assert not stripe_api.requests_to("/v1/webhook_endpoints", "POST")
    assert CatalogEntry.objects.count() == 6  # 2 products, 3 prices, the portal


def test_starter_yearly_is_bought_through_checkout_and_granted(billing, owner, owner_client):
    ws = owner.workspace.public_id
    response = owner_client.post(f"/w/{ws}/billing/checkout/", {"price": "starter_yearly"})
    (created,) = billing.requests_to("/v1/checkout/sessions", "POST")
    assert response.status_code == 302
    (session_id,) = billing.checkout_sessions
    assert response["Location"] == billing.checkout_sessions[session_id]["url"]
    params = created.params
    assert params["mode"] == "subscription"
    assert params["line_items"] == [{"price": catalog_id("price:starter_yearly"), "quantity": "1"}]
    assert params["client_reference_id"] == ws
    assert params["customer"] == BillingAccount.objects.get().stripe_customer_id
    session = billing.complete_checkout(session_id)
    answer = _webhook(owner_client, event("checkout.session.completed", session))
    assert answer.status_code == 200
    account = BillingAccount.objects.get()
    assert (account.plan, account.interval, account.status) == ("starter", "year", "active")
    assert entitlements_get(workspace=owner.workspace).plan == STARTER
    assert account.current_period_end is not None
    page = owner_client.get(f"/w/{ws}/billing/").content.decode()
    assert "Your plan: Starter" in page and "Billed yearly" in page


def test_starter_monthly_is_refused_before_stripe_hears_of_it(billing, owner, owner_client):
    monthly = stripe.Price.create(
        product=catalog_id("product:starter"),
        currency="usd",
        unit_amount=100,
        recurring={"interval": "month"},
    )
    Price.sync_from_stripe_data(monthly, api_key=stripe.api_key)
    billing.clear()
    api = token_client(owner)
    answer = api.post(
        f"/api/v1/workspaces/{owner.workspace.public_id}/billing/checkout/",
        {"price": monthly["id"], "success_url": "https://x.test/", "cancel_url": "https://x.test/"},
        format="json",
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "plan_shape_refused"
    assert "only as a yearly plan" in answer.json()["error"]["message"]
    page = owner_client.post(
        f"/w/{owner.workspace.public_id}/billing/checkout/", {"price": monthly["id"]}, follow=True
    )
    assert "only as a yearly plan" in page.content.decode()
    assert billing.requests == []  # no customer, no session: nothing created in Stripe
    assert not BillingAccount.objects.filter(subscription_id__gt="").exists()


@pytest.mark.parametrize("price_key", ["pro_monthly", "pro_yearly"])
def test_pro_is_granted_monthly_or_yearly(billing, owner, owner_client, price_key):
    _subscribed(owner_client, billing, owner, price_key)
    account = BillingAccount.objects.get()
    assert account.plan == "pro" and account.interval == price_key.split("_")[1].removesuffix("ly")
    entitlements = entitlements_get(workspace=owner.workspace)
    assert entitlements.plan == PRO and entitlements.external_sending


def test_a_webhook_with_a_bad_signature_is_refused_and_changes_nothing(billing, owner, client):
    subscription = billing.subscribe(_customer(owner), catalog_id("price:pro_monthly"))
    evt = event("customer.subscription.created", subscription)
    answer = _webhook(client, evt, secret="whsec_not_the_right_one")
    assert answer.status_code == 400
    assert not Event.objects.filter(id=evt["id"]).exists()
    assert WebhookEventTrigger.objects.get().valid is False
    assert BillingAccount.objects.get().plan == ""
    unsigned = client.post(
        f"/stripe/webhook/{WebhookEndpoint.objects.get().djstripe_uuid}/",
        data=event_body(evt),
        content_type="application/json",
    )
    assert unsigned.status_code == 400


def test_the_same_event_twice_changes_nothing(billing, owner, client):
    subscription = billing.subscribe(_customer(owner), catalog_id("price:pro_yearly"))
    evt = event("customer.subscription.created", subscription)
    assert _webhook(client, evt).status_code == 200
    state = BillingAccount.objects.values().get()
    logs = AuditLog.objects.count()
    assert _webhook(client, evt).status_code == 200
    assert BillingAccount.objects.values().get() == state
    assert AuditLog.objects.count() == logs
    assert Event.objects.filter(id=evt["id"]).count() == 1


def test_a_monthly_starter_created_behind_our_back_is_flagged_and_not_granted(
    billing, owner, owner_client, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.STAFF_ALERT_EMAILS = ["staff@ops.test"]
    monthly = stripe.Price.create(
        product=catalog_id("product:starter"),
        currency="usd",
        unit_amount=100,
        recurring={"interval": "month"},
    )
    with django_capture_on_commit_callbacks(execute=True):
        _subscribed(owner_client, billing, owner, monthly["id"])
    account = BillingAccount.objects.get()
    assert account.status == "active" and account.plan == "starter"
    assert "only yearly" in account.flagged_reason
    assert entitlements_get(workspace=owner.workspace).plan == EVALUATION
    log = AuditLog.objects.get(action="billing.subscription_flagged")
    assert log.workspace == owner.workspace and "only yearly" in log.reason
    page = owner_client.get(f"/w/{owner.workspace.public_id}/billing/").content.decode()
    assert "under review" in page
    (alert,) = [m for m in mailoutbox if "Subscription flagged" in m.subject]
    assert alert.to == ["staff@ops.test"] and "only yearly" in alert.body


def _draft(mailbox: Mailbox, kind: str = MessageKind.CAMPAIGN) -> MessageDraft:
    return MessageDraft(
        mailbox=mailbox,
        kind=kind,
        recipient="prospect@example.org",
        subject="Hello",
        text_body="Hi there",
    )


def test_past_due_keeps_sending_for_seven_days_then_stops_until_paid(
    billing, sender, owner, owner_client
):
    subscription = _subscribed(owner_client, billing, owner, "pro_monthly")
    mailbox = Mailbox.objects.get()
    past_due = billing.fail_renewal(subscription["id"])
    assert past_due["status"] == "past_due"
    assert (
        _webhook(owner_client, event("customer.subscription.updated", past_due)).status_code == 200
    )
    account = BillingAccount.objects.get()
    since = account.past_due_since
    assert account.status == "past_due" and since is not None
    for day in range(7):
        now = since + timedelta(days=day, hours=23)
        assert external_sending_refusal(workspace=owner.workspace, now=now) == ""
    assert "grace period has ended" in external_sending_refusal(
        workspace=owner.workspace, now=since + timedelta(days=7, seconds=1)
    )
    # Day 8 arrives: campaigns are refused, warm-up and data are kept.
    BillingAccount.objects.update(past_due_since=timezone.now() - timedelta(days=7, hours=1))
    with pytest.raises(ApplicationError, match="grace period has ended") as refused:
        messages_reserve(drafts=[_draft(mailbox)], enqueue=False)
    assert refused.value.code == "external_sending_stopped"
    assert messages_reserve(drafts=[_draft(mailbox, MessageKind.WARMUP)], enqueue=False)
    page = owner_client.get(f"/w/{owner.workspace.public_id}/billing/").content.decode()
    assert "grace period has ended" in page
    # Paying restores at once.
    paid = billing.pay_latest_invoice(subscription["id"])
    assert paid["status"] == "active"
    invoice = json.loads(
        json.dumps(stripe.Invoice.retrieve(paid["latest_invoice"]).to_dict(), default=str)
    )
    assert _webhook(owner_client, event("invoice.paid", invoice)).status_code == 200
    account.refresh_from_db()
    assert account.status == "active" and account.past_due_since is None
    assert messages_reserve(drafts=[_draft(mailbox)], enqueue=False)
    # The paid invoice is listed for the customer, with its amount.
    invoices = selectors.invoices_list(workspace=owner.workspace)
    assert [(i["status"], i["amount"]) for i in invoices] == [("paid", 10.0)]
    page = owner_client.get(f"/w/{owner.workspace.public_id}/billing/").content.decode()
    assert "10.00 USD" in page


def test_a_failed_payment_and_a_cancellation_arrive_through_their_own_events(
    billing, owner, owner_client
):
    subscription = _subscribed(owner_client, billing, owner, "pro_yearly")
    billing.fail_renewal(subscription["id"])
    open_invoice = json.loads(
        json.dumps(
            stripe.Invoice.list(subscription=subscription["id"]).data[0].to_dict(), default=str
        )
    )
    assert _webhook(owner_client, event("invoice.payment_failed", open_invoice)).status_code == 200
    account = BillingAccount.objects.get()
    assert account.status == "past_due" and account.past_due_since is not None
    assert entitlements_get(workspace=owner.workspace).standing == "grace"
    cancelled = stripe.Subscription.cancel(subscription["id"])
    answer = _webhook(
        owner_client, event("customer.subscription.deleted", json.loads(str(cancelled)))
    )
    assert answer.status_code == 200
    account.refresh_from_db()
    assert account.status == "canceled" and account.past_due_since is None
    assert entitlements_get(workspace=owner.workspace).plan == EVALUATION
    assert AuditLog.objects.filter(action="billing.subscription_update").count() == 3
