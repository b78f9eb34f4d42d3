"""The Stripe catalog: Products, Prices and the Customer Portal configuration, from plans.py.

`billing_sync_plans` runs `catalog_sync`: it creates what is missing, updates what changed, and
syncs the objects into dj-stripe's tables. Prices are immutable at Stripe, so a changed amount
or interval makes a new Price that takes over the lookup key; the old one is archived.
"""

from dataclasses import dataclass
from typing import Any, cast
from uuid import uuid4

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from djstripe.models import Price as DjPrice
from djstripe.models import Product as DjProduct
from djstripe.models import WebhookEndpoint
from djstripe.settings import djstripe_settings

from billing.models import CatalogEntry
from billing.plans import PLANS, Interval, Plan, Price
from config.errors import ApplicationError

# Subscription and invoice events the platform acts on (and the ones dj-stripe needs to keep
# its copies current).
WEBHOOK_EVENTS = [
    "checkout.session.completed",
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "invoice.created",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.updated",
]


def stripe_key() -> str:
    key = djstripe_settings.STRIPE_SECRET_KEY
    if not settings.BILLING_ENABLED or not key:
        raise ApplicationError(
            "Payments are not set up on this installation yet; contact support.",
            code="billing_disabled",
            status=503,
        )
    return str(key)


def _livemode() -> bool:
    return bool(settings.STRIPE_LIVE_MODE)


def catalog_id(key: str) -> str | None:
    entry = CatalogEntry.objects.filter(key=key, livemode=_livemode()).first()
    return entry.stripe_id if entry else None


def _remember(key: str, stripe_id: str) -> None:
    CatalogEntry.objects.update_or_create(
        key=key,
        defaults={"stripe_id": stripe_id, "livemode": _livemode(), "updated_at": timezone.now()},
    )


@dataclass
class SyncReport:
    created: list[str]
    updated: list[str]
    unchanged: list[str]

    def lines(self) -> list[str]:
        return (
            [f"created {k}" for k in self.created]
            + [f"updated {k}" for k in self.updated]
            + [f"unchanged {k}" for k in self.unchanged]
        )


def _product_sync(plan: Plan, key: str, report: SyncReport) -> str:
    name = f"{settings.PRODUCT_NAME} {plan.name}"
    metadata = {"trustgate_plan": plan.code}
    product_id = catalog_id(f"product:{plan.code}")
    if product_id is None:
        product = stripe.Product.create(api_key=key, name=name, metadata=metadata)
        report.created.append(f"product:{plan.code}")
    else:
        product = stripe.Product.retrieve(product_id, api_key=key)
        if product["name"] != name or dict(product["metadata"] or {}) != metadata:
            product = stripe.Product.modify(product_id, api_key=key, name=name, metadata=metadata)
            report.updated.append(f"product:{plan.code}")
        else:
            report.unchanged.append(f"product:{plan.code}")
    _remember(f"product:{plan.code}", product["id"])
    DjProduct.sync_from_stripe_data(product, api_key=key)
    return str(product["id"])


def _price_matches(existing: Any, price: Price, product_id: str) -> bool:
    recurring = existing.get("recurring") or {}
    return (
        existing.get("unit_amount") == price.amount_cents
        and existing.get("product") == product_id
        and recurring.get("interval") == price.interval.value
        and int(recurring.get("interval_count") or 1) == 1
        and bool(existing.get("active", True))
    )


def _price_sync(price: Price, product_id: str, key: str, report: SyncReport) -> str:
    name = f"price:{price.key}"
    price_id = catalog_id(name)
    existing = stripe.Price.retrieve(price_id, api_key=key) if price_id else None
    if existing is not None and _price_matches(existing, price, product_id):
        report.unchanged.append(name)
        result = existing
    else:
        result = stripe.Price.create(
            api_key=key,
            product=product_id,
            currency="usd",
            unit_amount=price.amount_cents,
            recurring={"interval": price.interval.value, "interval_count": 1},
            lookup_key=price.key,
            transfer_lookup_key=True,
            metadata={"trustgate_plan": price.plan, "trustgate_price": price.key},
        )
        if existing is not None:
            stripe.Price.modify(existing["id"], api_key=key, active=False)
            report.updated.append(name)
        else:
            report.created.append(name)
    _remember(name, result["id"])
    DjPrice.sync_from_stripe_data(result, api_key=key)
    return str(result["id"])


def _portal_features(products: dict[str, list[str]]) -> dict[str, Any]:
    """The portal may switch between the catalog's prices only: Starter's is the yearly one."""
    return {
        "customer_update": {"enabled": True, "allowed_updates": ["email", "address", "tax_id"]},
        "invoice_history": {"enabled": True},
        "payment_method_update": {"enabled": True},
        "subscription_cancel": {"enabled": True, "mode": "at_period_end"},
        "subscription_update": {
            "enabled": True,
            "default_allowed_updates": ["price"],
            "proration_behavior": "create_prorations",
            "products": [
                {"product": product, "prices": prices} for product, prices in products.items()
            ],
        },
    }


def _portal_sync(products: dict[str, list[str]], key: str, report: SyncReport) -> None:
    params = {
        "business_profile": {"headline": f"{settings.PRODUCT_NAME} billing"},
        "features": _portal_features(products),
        "default_return_url": settings.SITE_URL.rstrip("/") + "/",
    }
    portal_id = catalog_id("portal")
    if portal_id is None:
        portal = stripe.billing_portal.Configuration.create(api_key=key, **params)
        report.created.append("portal")
    else:
        portal = stripe.billing_portal.Configuration.modify(portal_id, api_key=key, **params)
        report.updated.append("portal")
    _remember("portal", portal["id"])


def _webhook_sync(key: str, report: SyncReport) -> None:
    """One endpoint at SITE_URL for this mode; created once (Stripe shows its secret only then)."""
    if WebhookEndpoint.objects.filter(livemode=_livemode()).exists():
        report.unchanged.append("webhook")
        return
    uuid = uuid4()
    url = settings.SITE_URL.rstrip("/") + f"/stripe/webhook/{uuid}/"
    endpoint = stripe.WebhookEndpoint.create(
        api_key=key,
        url=url,
        enabled_events=cast(Any, WEBHOOK_EVENTS),
        api_version=djstripe_settings.STRIPE_API_VERSION,
        metadata={"djstripe_uuid": str(uuid)},
        description=f"{settings.PRODUCT_NAME} billing",
    )
    synced = WebhookEndpoint.sync_from_stripe_data(endpoint, api_key=key)
    synced.secret = endpoint["secret"]
    synced.djstripe_uuid = uuid
    synced.save(update_fields=["secret", "djstripe_uuid"])
    report.created.append("webhook")


@transaction.atomic
def catalog_sync(*, webhook: bool = True) -> SyncReport:
    """Create or update the plans' Products and Prices and the portal configuration in Stripe."""
    key = stripe_key()
    report = SyncReport([], [], [])
    products: dict[str, list[str]] = {}
    for plan in PLANS.values():
        if not plan.sold:
            continue
        product_id = _product_sync(plan, key, report)
        products[product_id] = [_price_sync(p, product_id, key, report) for p in plan.prices]
    _portal_sync(products, key, report)
    if webhook:
        _webhook_sync(key, report)
    return report


@dataclass(frozen=True)
class PriceInfo:
    stripe_id: str
    plan: str | None
    interval: str | None
    interval_count: int


def price_info(data: dict[str, Any]) -> PriceInfo:
    """What a Stripe Price (or a legacy Plan, which older subscriptions carry) sells."""
    recurring = data.get("recurring") or {}
    interval = recurring.get("interval") or data.get("interval")
    count = recurring.get("interval_count") or data.get("interval_count") or 1
    product = data.get("product")
    product_id = product.get("id") if isinstance(product, dict) else product
    plan = None
    for code in PLANS:
        if product_id and catalog_id(f"product:{code}") == product_id:
            plan = code
    return PriceInfo(str(data.get("id") or ""), plan, interval, int(count))


def price_resolve(reference: str) -> PriceInfo:
    """A price named by its catalog key (`starter_yearly`) or its Stripe id."""
    stripe_id = catalog_id(f"price:{reference}") if reference in _price_keys() else reference
    price = DjPrice.objects.filter(id=stripe_id).first() if stripe_id else None
    if price is None:
        raise ApplicationError(
            "That price is not one of ours.", code="unknown_price", fields={"price": ["Unknown."]}
        )
    return price_info(price.stripe_data or {})


def _price_keys() -> set[str]:
    return {price.key for plan in PLANS.values() for price in plan.prices}


def interval_label(interval: str | None) -> str:
    return {Interval.MONTH.value: "monthly", Interval.YEAR.value: "yearly"}.get(
        interval or "", interval or "unknown"
    )
