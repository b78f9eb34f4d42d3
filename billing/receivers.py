"""dj-stripe's webhook events, handed to the billing services (an adapter: no rules here).

dj-stripe verifies the signature, stores each event once (a replayed event id is not processed
again) and syncs the object it names from Stripe's API before these receivers run, inside the
same transaction: a failure rolls the event back so that Stripe's retry processes it again.
"""

from typing import Any

from djstripe.event_handlers import djstripe_receiver
from djstripe.models import Event, Subscription

from billing.services.subscriptions import (
    invoice_subscription_id,
    subscription_apply,
    subscription_refresh,
)


@djstripe_receiver(
    [
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
    ]
)
def subscription_changed(sender: Any, event: Event, **kwargs: Any) -> None:
    subscription_id = (event.data.get("object") or {}).get("id")
    subscription = Subscription.objects.filter(id=subscription_id).first()
    if subscription is not None:
        subscription_apply(subscription=subscription)


@djstripe_receiver(["invoice.paid", "invoice.payment_failed", "checkout.session.completed"])
def payment_changed(sender: Any, event: Event, **kwargs: Any) -> None:
    # A paid invoice restores access at once, without waiting for the subscription's own event.
    obj = event.data.get("object") or {}
    if event.type == "checkout.session.completed":
        subscription_id = obj.get("subscription")
    else:
        subscription_id = invoice_subscription_id(obj)
    if subscription_id:
        subscription_refresh(subscription_id=str(subscription_id))
