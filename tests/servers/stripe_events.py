"""Stripe events and webhook signatures for tests, shaped as Stripe sends them.

``event("customer.subscription.updated", subscription)`` builds the event object Stripe posts
(https://docs.stripe.com/api/events/object); ``event_body`` serialises it and ``signed_headers``
signs that body exactly as Stripe does (https://docs.stripe.com/webhooks#verify-manually)::

    body = event_body(event("invoice.paid", invoice))
    client.post(url, body, content_type="application/json", headers=signed_headers(body, secret))
"""

import hashlib
import hmac
import json
import secrets
import string
import time
from collections.abc import Mapping
from typing import Any

import stripe

ALPHANUMERIC = string.ascii_letters + string.digits


def random_id(prefix: str, length: int = 24) -> str:
    """An id shaped like Stripe's: a type prefix and random letters and digits."""
    return prefix + "".join(secrets.choice(ALPHANUMERIC) for _ in range(length))


def event(
    type: str,
    obj: Mapping[str, Any],
    *,
    event_id: str | None = None,
    created: int | None = None,
    api_version: str | None = None,
    previous_attributes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An event object of `type` about `obj`.

    `api_version` defaults to the version stripe-python is pinned to (the one the account's
    endpoints are created with); `previous_attributes` is set on `*.updated` events by Stripe.
    """
    data: dict[str, Any] = {"object": dict(obj)}
    if previous_attributes is not None:
        data["previous_attributes"] = dict(previous_attributes)
    return {
        "id": event_id or random_id("evt_"),
        "object": "event",
        "api_version": api_version or stripe.api_version,
        "created": int(time.time()) if created is None else created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type,
    }


def event_body(evt: Mapping[str, Any]) -> bytes:
    """The JSON body of a webhook delivery carrying `evt`."""
    return json.dumps(evt, indent=2).encode()


def signature(body: bytes, secret: str, timestamp: int) -> str:
    """The v1 scheme: hex HMAC-SHA256, keyed with the endpoint secret, of "<timestamp>.<body>"."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signed_headers(body: bytes, secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    """The `Stripe-Signature` header Stripe sends with `body` to an endpoint with `secret`."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {"Stripe-Signature": f"t={ts},v1={signature(body, secret, ts)}"}
