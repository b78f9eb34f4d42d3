"""The local Stripe (localstripe behind the recording proxy) answers stripe-python like Stripe."""

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.error import HTTPError
from urllib.parse import parse_qsl
from urllib.request import urlopen

import pytest
import stripe

from tests.servers.stripe import StripeServer, decode_params, encode_params
from tests.servers.stripe_events import event, event_body, signed_headers

KEY = "sk_test_x"


@pytest.fixture(scope="module")
def server() -> Iterator[StripeServer]:
    with StripeServer() as running, pytest.MonkeyPatch.context() as patch:
        patch.setattr(stripe, "api_base", running.url)
        yield running


@pytest.fixture
def local(server: StripeServer) -> StripeServer:
    server.clear()
    return server


def _product(name: str = "TrustGate Pro") -> Any:
    return stripe.Product.create(api_key=KEY, name=name)


def _price(product_id: str, lookup_key: str, **extra: Any) -> Any:
    params: dict[str, Any] = {
        "product": product_id,
        "currency": "usd",
        "unit_amount": 1900,
        "recurring": {"interval": "month", "interval_count": 1},
        "lookup_key": lookup_key,
        "metadata": {"trustgate_plan": "pro"},
    }
    return stripe.Price.create(api_key=KEY, **(params | extra))


def test_it_decodes_stripe_form_encoding_into_nested_params() -> None:
    pairs = [
        ("line_items[0][price]", "price_1"),
        ("line_items[0][quantity]", "2"),
        ("line_items[1][price]", "price_2"),
        ("metadata[workspace]", "ws_1"),
        ("lookup_keys[]", "a"),
        ("lookup_keys[]", "b"),
        ("expand[0]", "data.product"),
    ]
    params = decode_params(pairs)

    assert params == {
        "line_items": [{"price": "price_1", "quantity": "2"}, {"price": "price_2"}],
        "metadata": {"workspace": "ws_1"},
        "lookup_keys": ["a", "b"],
        "expand": ["data.product"],
    }
    assert decode_params(parse_qsl(encode_params(params))) == params


def test_it_forwards_customers_to_localstripe_and_records_them(local: StripeServer) -> None:
    created = stripe.Customer.create(
        api_key=KEY, email="owner@example.com", metadata={"trustgate_workspace": "ws_1"}
    )
    fetched = stripe.Customer.retrieve(created.id, api_key=KEY)

    assert created.id.startswith("cus_")
    assert fetched.email == "owner@example.com"
    assert fetched["balance"] == 0
    [create] = local.requests_to("/v1/customers", method="POST")
    assert create.params == {
        "email": "owner@example.com",
        "metadata": {"trustgate_workspace": "ws_1"},
    }
    assert [r.method for r in local.requests_to(f"/v1/customers/{created.id}")] == ["GET"]
    local.clear()
    assert local.requests == []


def test_it_answers_the_account_and_refuses_unknown_urls_as_stripe_does(
    local: StripeServer,
) -> None:
    account = stripe.Account.retrieve(api_key=KEY)

    with pytest.raises(stripe.InvalidRequestError, match="Unrecognized request URL") as unknown:
        stripe.Customer.list_balance_transactions("cus_x", api_key=KEY)
    with pytest.raises(HTTPError) as anonymous:
        urlopen(f"{local.url}/v1/prices")

    assert account.id == local.account_id
    assert unknown.value.http_status == 404
    assert anonymous.value.code == 401
    assert json.load(anonymous.value)["error"]["type"] == "invalid_request_error"


def test_it_creates_prices_lists_them_by_lookup_key_and_mirrors_them_as_plans(
    local: StripeServer,
) -> None:
    product = _product()
    price = _price(product.id, "pro_monthly_listing")
    _price(product.id, "pro_yearly_listing", recurring={"interval": "year"}, unit_amount=19000)

    listed = stripe.Price.list(api_key=KEY, lookup_keys=["pro_monthly_listing"])
    plan = stripe.Plan.retrieve(price.id, api_key=KEY)  # localstripe's mirror

    assert price.id.startswith("price_")
    assert (price.object, price.type, price.unit_amount) == ("price", "recurring", 1900)
    assert price.recurring.interval == "month"
    assert price.metadata["trustgate_plan"] == "pro"
    assert listed.object == "list"
    assert [p.id for p in listed.data] == [price.id]
    assert (plan.amount, plan.interval, plan.product) == (1900, "month", product.id)
    [create] = local.requests_to("/v1/prices", method="POST")[:1]
    assert create.params["recurring"] == {"interval": "month", "interval_count": "1"}


def test_it_moves_a_lookup_key_only_when_asked(local: StripeServer) -> None:
    product = _product()
    old = _price(product.id, "pro_monthly_moving")

    with pytest.raises(stripe.InvalidRequestError, match="already uses that lookup key"):
        _price(product.id, "pro_monthly_moving", unit_amount=2900)
    new = _price(product.id, "pro_monthly_moving", unit_amount=2900, transfer_lookup_key=True)
    stripe.Price.modify(old.id, api_key=KEY, active=False)

    assert stripe.Price.retrieve(old.id, api_key=KEY).lookup_key is None
    assert stripe.Price.retrieve(old.id, api_key=KEY).active is False
    listed = stripe.Price.list(api_key=KEY, lookup_keys=["pro_monthly_moving"], active=True)
    assert [p.id for p in listed.data] == [new.id]


def test_it_refuses_what_stripe_refuses_on_prices(local: StripeServer) -> None:
    with pytest.raises(stripe.InvalidRequestError, match="unknown parameter: colour"):
        stripe.Price.create(api_key=KEY, currency="usd", product="prod_x", colour="red")
    with pytest.raises(stripe.InvalidRequestError, match="No such product"):
        stripe.Price.create(api_key=KEY, currency="usd", product="prod_missing", unit_amount=1)
    with pytest.raises(stripe.InvalidRequestError, match="No such price") as missing:
        stripe.Price.retrieve("price_missing", api_key=KEY)

    assert missing.value.http_status == 404
    assert missing.value.code == "resource_missing"


def test_it_subscribes_on_a_price_with_the_price_on_items(local: StripeServer) -> None:
    product = _product()
    price = _price(product.id, "pro_monthly_subscribing")
    customer = stripe.Customer.create(api_key=KEY, email="payer@example.com")

    answered = local.subscribe(customer.id, price.id)
    fetched = stripe.Subscription.retrieve(answered["id"], api_key=KEY)

    assert answered["status"] == "active"
    assert answered["items"]["data"][0]["price"]["id"] == price.id
    item = fetched["items"].data[0]
    assert item.price.id == price.id
    assert item.price.recurring.interval == "month"
    assert item.price.lookup_key == "pro_monthly_subscribing"
    assert item.price.metadata["trustgate_plan"] == "pro"
    assert item.current_period_end == fetched.current_period_end > time.time()
    assert item.subscription == fetched.id
    invoice = stripe.Invoice.retrieve(
        fetched.latest_invoice, api_key=KEY, expand=["discounts", "lines.data.discounts"]
    )
    assert invoice.status == "paid"
    assert invoice.discounts == []
    assert invoice.lines.data[0].price.id == price.id
    assert invoice.parent.subscription_details.subscription == fetched.id


def test_it_creates_subscriptions_given_items_price_as_stripe_takes_them(
    local: StripeServer,
) -> None:
    price = _price(_product().id, "pro_monthly_by_price")
    customer = stripe.Customer.create(api_key=KEY, email="direct@example.com")
    local.attach_card(customer.id)

    subscription = stripe.Subscription.create(
        api_key=KEY, customer=customer.id, items=[{"price": price.id}]
    )

    assert subscription.status == "active"
    assert subscription["items"].data[0].price.id == price.id
    [create] = local.requests_to("/v1/subscriptions", method="POST")
    assert create.params["items"] == [{"price": price.id}]


def test_it_leaves_a_declined_subscription_incomplete_until_its_invoice_is_paid(
    local: StripeServer,
) -> None:
    price = _price(_product().id, "pro_monthly_declined")
    customer = stripe.Customer.create(api_key=KEY, email="declined@example.com")

    declined = local.subscribe(customer.id, price.id, card_ok=False)
    invoice = stripe.Invoice.retrieve(declined["latest_invoice"], api_key=KEY)
    paid = local.pay_latest_invoice(declined["id"])

    assert declined["status"] == "incomplete"
    assert invoice.status == "open"
    assert paid["status"] == "active"


def test_it_makes_a_subscription_past_due_and_active_again(local: StripeServer) -> None:
    price = _price(_product().id, "pro_monthly_past_due")
    customer = stripe.Customer.create(api_key=KEY, email="late@example.com")
    first = local.subscribe(customer.id, price.id)

    past_due = local.fail_renewal(first["id"])
    renewal = stripe.Invoice.retrieve(past_due["latest_invoice"], api_key=KEY)
    active = local.pay_latest_invoice(first["id"])

    assert past_due["status"] == "past_due"
    assert past_due["latest_invoice"] != first["latest_invoice"]
    assert renewal.status == "open"
    assert active["status"] == "active"
    assert stripe.Invoice.retrieve(past_due["latest_invoice"], api_key=KEY).status == "paid"


def test_it_opens_checkout_sessions_and_records_what_was_asked(local: StripeServer) -> None:
    price = _price(_product().id, "pro_monthly_checkout")
    customer = stripe.Customer.create(api_key=KEY, email="buyer@example.com")

    session = stripe.checkout.Session.create(
        api_key=KEY,
        mode="subscription",
        customer=customer.id,
        client_reference_id="ws_1",
        line_items=[{"price": price.id, "quantity": 1}],
        subscription_data={"metadata": {"workspace": "ws_1"}},
        metadata={"workspace": "ws_1"},
        success_url="https://app.example.com/billing/?done=1",
        cancel_url="https://app.example.com/billing/",
    )
    fetched = stripe.checkout.Session.retrieve(session.id, api_key=KEY, expand=["line_items"])

    assert session.id.startswith("cs_test_")
    assert session.object == "checkout.session"
    assert session.url == f"{local.url}/checkout/{session.id}"
    assert (session.status, session.mode, session.customer) == ("open", "subscription", customer.id)
    assert session.client_reference_id == "ws_1"
    assert session.metadata["workspace"] == "ws_1"
    assert session.amount_total == 1900
    assert fetched.line_items.data[0].price.id == price.id
    [create] = local.requests_to("/v1/checkout/sessions", method="POST")
    assert create.params["line_items"][0]["price"] == price.id
    assert create.params["subscription_data"]["metadata"]["workspace"] == "ws_1"

    completed = local.complete_checkout(session.id)

    assert (completed["status"], completed["payment_status"]) == ("complete", "paid")
    subscription = stripe.Subscription.retrieve(completed["subscription"], api_key=KEY)
    assert subscription.status == "active"
    assert subscription.metadata["workspace"] == "ws_1"


def test_it_refuses_checkout_sessions_stripe_would_refuse(local: StripeServer) -> None:
    one_time = stripe.Price.create(
        api_key=KEY, product=_product().id, currency="usd", unit_amount=500
    )

    with pytest.raises(stripe.InvalidRequestError, match="No such price"):
        stripe.checkout.Session.create(
            api_key=KEY, mode="subscription", line_items=[{"price": "price_nope"}]
        )
    with pytest.raises(stripe.InvalidRequestError, match="at least one recurring price"):
        stripe.checkout.Session.create(
            api_key=KEY, mode="subscription", line_items=[{"price": one_time.id, "quantity": 1}]
        )


def test_it_echoes_portal_configurations_and_opens_portal_sessions(local: StripeServer) -> None:
    product = _product()
    price = _price(product.id, "pro_monthly_portal")
    customer = stripe.Customer.create(api_key=KEY, email="portal@example.com")
    features = {
        "customer_update": {"enabled": True, "allowed_updates": ["email", "address"]},
        "invoice_history": {"enabled": True},
        "subscription_cancel": {"enabled": True, "mode": "at_period_end"},
        "subscription_update": {
            "enabled": True,
            "default_allowed_updates": ["price"],
            "proration_behavior": "create_prorations",
            "products": [{"product": product.id, "prices": [price.id]}],
        },
    }

    config = stripe.billing_portal.Configuration.create(
        api_key=KEY,
        business_profile={"headline": "TrustGate billing"},
        features=features,
        default_return_url="https://app.example.com/",
    )
    updated = stripe.billing_portal.Configuration.modify(
        config.id, api_key=KEY, features={"payment_method_update": {"enabled": True}}
    )
    fetched = stripe.billing_portal.Configuration.retrieve(config.id, api_key=KEY)
    session = stripe.billing_portal.Session.create(
        api_key=KEY, customer=customer.id, configuration=config.id
    )

    assert config.id.startswith("bpc_")
    assert config.object == "billing_portal.configuration"
    assert config.business_profile.headline == "TrustGate billing"
    assert config.features.customer_update.enabled is True
    assert config.features.customer_update.allowed_updates == ["email", "address"]
    assert config.features.subscription_update.products[0].prices == [price.id]
    assert config.features.payment_method_update.enabled is False
    assert updated.features.payment_method_update.enabled is True
    assert fetched.features.subscription_cancel.mode == "at_period_end"
    assert fetched.features.subscription_update.enabled is True
    assert session.id.startswith("bps_")
    assert session.url == f"{local.url}/p/session/{session.id}"
    assert session.return_url == "https://app.example.com/"
    assert (session.customer, session.configuration) == (customer.id, config.id)


def test_it_gives_webhook_endpoints_a_secret_on_creation_only(local: StripeServer) -> None:
    endpoint = stripe.WebhookEndpoint.create(
        api_key=KEY,
        url="https://app.example.com/stripe/webhook/abc/",
        enabled_events=["checkout.session.completed", "customer.subscription.updated"],
        api_version=stripe.api_version,
        metadata={"djstripe_uuid": "abc"},
        description="TrustGate billing",
    )
    fetched = stripe.WebhookEndpoint.retrieve(endpoint.id, api_key=KEY)
    listed = stripe.WebhookEndpoint.list(api_key=KEY)

    assert endpoint.id.startswith("we_")
    assert endpoint.secret.startswith("whsec_")
    assert endpoint.secret == local.webhook_secret(endpoint.id)
    assert endpoint.status == "enabled"
    assert endpoint.api_version == stripe.api_version
    assert "secret" not in fetched
    assert fetched.enabled_events == endpoint.enabled_events
    assert endpoint.id in [e.id for e in listed.data]


def test_it_signs_events_as_stripe_does() -> None:
    subscription = {"id": "sub_1", "object": "subscription", "status": "active"}
    evt = event("customer.subscription.updated", subscription, event_id="evt_1", created=1)
    body = event_body(evt)
    secret = "whsec_test"

    headers = signed_headers(body, secret)

    assert evt["data"]["object"] == subscription
    assert (evt["id"], evt["object"], evt["created"]) == ("evt_1", "event", 1)
    assert (evt["livemode"], evt["api_version"]) == (False, stripe.api_version)
    assert evt["request"] == {"id": None, "idempotency_key": None}
    assert stripe.WebhookSignature.verify_header(body, headers["Stripe-Signature"], secret, 300)
    constructed = stripe.Webhook.construct_event(body, headers["Stripe-Signature"], secret)
    assert constructed.type == "customer.subscription.updated"
    tampered = json.dumps({**evt, "type": "invoice.paid"}).encode()
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(tampered, headers["Stripe-Signature"], secret, 300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body, headers["Stripe-Signature"], "whsec_other")
    old = signed_headers(body, secret, timestamp=int(time.time()) - 600)["Stripe-Signature"]
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        stripe.WebhookSignature.verify_header(body, old, secret, 300)
