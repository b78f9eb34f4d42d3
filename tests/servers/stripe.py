"""A local Stripe for tests: localstripe behind a recording proxy that adds what it lacks.

::

    with StripeServer() as server:
        stripe.api_base = server.url
        customer = stripe.Customer.create(api_key="sk_test_x", email="a@example.com")
        assert server.requests_to("/v1/customers")[0].params["email"] == "a@example.com"

Registered as a pytest plugin (``"tests.servers.stripe"`` in ``pytest_plugins``) it provides
``stripe_server`` (one per session) and ``stripe_api`` (that server for one test: its record
emptied, ``stripe.api_base`` pointed at it and ``stripe.api_key`` set to ``API_KEY``).

Every request reaching the proxy is recorded as ``Recorded(method, path, params)``; params are
the query string and the form body decoded into nested dicts and lists (``a[b][0][c]=x`` gives
``{"a": {"b": [{"c": "x"}]}}``), values as the strings sent on the wire.

The proxy answers these itself, in memory, in the shapes https://docs.stripe.com/api documents
(unknown and missing required parameters refused as Stripe does, from stripe-python's own
parameter types):

- The account (``GET /v1/account``) and product features (none), which dj-stripe fetches when it
  syncs objects.
- Prices: create, retrieve, update, list (``lookup_keys``, ``product``, ``active``, ``currency``,
  ``type`` filters; ``transfer_lookup_key``; ``expand`` of ``product``). Each recurring price is
  mirrored as a localstripe plan with the same id, so ``items[0][plan]=<price id>`` works there.
  Later price updates are not mirrored: the proxy builds ``price`` objects from its own copy.
- Checkout Sessions: create (line items checked against the known prices, a recurring one
  required in subscription mode), retrieve, list line items, expire. ``complete_checkout``
  plays the customer paying: it subscribes them and marks the session complete.
- Customer Portal: configurations (create, update with deep merge, retrieve, list; features
  echoed with Stripe's defaults) and sessions (a default configuration is made on first use).
- Webhook endpoints: create (the ``whsec_`` secret only in that answer), retrieve, update,
  delete, list. Nothing is delivered to them: build events with ``tests.servers.stripe_events``.

Everything else is forwarded to localstripe (method, path, query, body, Authorization), with
these fixes for what stripe-python 15 and dj-stripe send or expect:

- localstripe is started from a small bootstrap instead of ``python -m localstripe``: it listens
  on loopback only and never reads or writes /tmp/localstripe.pickle, which every localstripe on
  the machine would otherwise share (and load at start).
- ``items[i][price]`` (and ``price`` on subscription items) is sent to it as ``plan``.
- Answers gain what Stripe's have: ``price`` (a Price built from the plan, with the proxy's
  lookup key and metadata when it knows the price) on subscription items, invoice lines and
  invoice items, ``pricing.price_details`` on invoice lines, ``current_period_start``/``_end``
  and ``subscription`` on subscription items, ``balance`` on customers.
- A GET whose ``expand`` names a field localstripe lacks (dj-stripe expands ``discounts`` on
  invoices) is retried without that path, and the field answered empty.
- localstripe's plain-text errors (no such route, a crash) are answered as Stripe errors, and
  fields it leaves null where Stripe has lists (``default_tax_rates``, ``discounts``) are lists.
- Every answer carries ``Stripe-Should-Retry: false``, so stripe-python never repeats a request.

What localstripe 1.15.10 can and cannot do with subscriptions:

- Cards (``attach_card``): ``CARD_OK`` (4242 4242 4242 4242) pays. ``CARD_DECLINED``
  (4000 0000 0000 0341) attaches but every charge is declined. ``CARD_REFUSED``
  (4000 0000 0000 0002 and the other decline numbers) is refused when attached (402).
  ``CARD_3DS`` (4000 0025 0000 3155) asks for authentication on every charge.
- A subscription bills its first invoice at once and is ``active`` once it is paid. If the charge
  is declined it stays ``incomplete`` with that invoice ``open``, whatever ``payment_behavior``
  says (no 402 for ``error_if_incomplete``); ``default_incomplete`` and
  ``pending_if_incomplete`` are refused (400). One item per subscription only (500 otherwise).
- ``POST /v1/invoices/{id}/pay`` charges the customer's default payment method at that moment:
  paying the open invoice of an ``incomplete`` or ``past_due`` subscription makes it ``active``
  (``pay_latest_invoice``).
- There is no clock: nothing renews, ``current_period_end`` never passes, test clocks do not
  exist. A subscription goes ``past_due`` only when a later invoice of an active subscription
  fails: a declined charge does not do it (``pay`` swallows the failure), a failed 3-D Secure
  authentication does, which ``fail_renewal`` uses. ``unpaid`` and ``trialing`` are never
  reached (a subscription with a trial stays ``incomplete`` and has no invoice).
- ``DELETE /v1/subscriptions/{id}`` cancels at once (``canceled``); ``cancel_at_period_end`` and
  ``cancel_at`` are stored only. Changing the plan invoices only if the interval changes.
- Its own events (2017 shapes) go only to URLs set through ``/_config/webhooks/{id}``.
"""

from __future__ import annotations

import copy
import html
import http.client
import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import IO, Any, NamedTuple, Self
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import pytest
import stripe
from stripe.params import (
    PriceCreateParams,
    PriceModifyParams,
    WebhookEndpointCreateParams,
    WebhookEndpointModifyParams,
)
from stripe.params.billing_portal import (
    ConfigurationCreateParams,
    ConfigurationModifyParams,
)
from stripe.params.billing_portal import SessionCreateParams as PortalSessionCreateParams
from stripe.params.checkout import SessionCreateParams as CheckoutSessionCreateParams

from tests.servers.stripe_events import random_id

HOST = "127.0.0.1"
API_KEY = "sk_test_" + "localstripe" * 3  # dj-stripe wants 24+ characters after the prefix
START_TIMEOUT = 15.0  # seconds for localstripe to answer
UPSTREAM_TIMEOUT = 30.0

CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000341"  # attaches; every charge declined
CARD_REFUSED = "4000000000000002"  # refused when attached
CARD_3DS = "4000002500003155"  # every charge asks for 3-D Secure

FORM = "application/x-www-form-urlencoded"
FORWARDED_HEADERS = ("authorization", "content-type", "accept", "idempotency-key")

# localstripe's server module, run on loopback without its shared pickle file.
BOOTSTRAP = """
import sys
from aiohttp import web
from localstripe import resources, server
resources.Store.dump_to_disk = lambda self: None
web.run_app(server.app, host=sys.argv[1], port=int(sys.argv[2]), access_log=None, print=None)
"""


class Recorded(NamedTuple):
    method: str
    path: str
    params: dict[str, Any]


class StripeApiError(Exception):
    """An error answered in Stripe's shape: ``{"error": {"type", "message", "code", "param"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.error: dict[str, Any] = {"type": error_type, "message": message}
        if code:
            self.error["code"] = code
        if param:
            self.error["param"] = param

    @classmethod
    def upstream(cls, status: int, body: Any) -> StripeApiError:
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        made = cls(status, str(error.get("message") or f"localstripe answered {status}"))
        made.error.update(error)
        return made

    def body(self) -> dict[str, Any]:
        return {"error": self.error}


def _missing(kind: str, ident: str, param: str = "id") -> StripeApiError:
    return StripeApiError(404, f"No such {kind}: '{ident}'", code="resource_missing", param=param)


def _required(param: str) -> StripeApiError:
    return StripeApiError(
        400, f"Missing required param: {param}.", code="parameter_missing", param=param
    )


# --- Parameters --------------------------------------------------------------------------------

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def decode_params(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (``a[b][0][c]=x``, ``a[]=x``) decoded into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.match(key)
        path = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))] if match else [key]
        node = root
        for depth, segment in enumerate(path):
            if segment == "" and depth:
                segment = str(sum(1 for k in node if k.isdigit()))
            if depth == len(path) - 1:
                node[segment] = value
            else:
                child = node.get(segment)
                if not isinstance(child, dict):
                    child = node[segment] = {}
                node = child
    return _listify(root)


def _listify(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        out[key] = _as_list_if_indexed(_listify(value)) if isinstance(value, dict) else value
    return out


def _as_list_if_indexed(node: dict[str, Any]) -> dict[str, Any] | list[Any]:
    if node and all(key.isdigit() for key in node):
        return [node[key] for key in sorted(node, key=int)]
    return node


def encode_params(params: Mapping[str, Any]) -> str:
    """The inverse of ``decode_params``, as stripe-python encodes (lists indexed)."""
    pairs: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(f"{prefix}[{key}]", item)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                walk(f"{prefix}[{index}]", item)
        elif isinstance(value, bool):
            pairs.append((prefix, "true" if value else "false"))
        else:
            pairs.append((prefix, str(value)))

    for key, value in params.items():
        walk(key, value)
    return urlencode(pairs)


def _check_params(params: Mapping[str, Any], spec: Any) -> None:
    """Refuse what Stripe refuses: parameters the endpoint does not have, required ones absent."""
    known = set(spec.__required_keys__) | set(spec.__optional_keys__)
    for key in params:
        if key not in known:
            raise StripeApiError(
                400, f"Received unknown parameter: {key}", code="parameter_unknown", param=key
            )
    for key in sorted(spec.__required_keys__):
        if params.get(key) in (None, ""):
            raise _required(key)


def _bool(value: Any, param: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise StripeApiError(400, f"Invalid boolean: {value}", code="parameter_invalid", param=param)


def _int(value: Any, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeApiError(
            400, f"Invalid integer: {value}", code="parameter_invalid", param=param
        ) from None


def _coerce_bools(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _coerce_bools(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_coerce_bools(value) for value in node]
    if node in ("true", "false"):
        return node == "true"
    return node


def _merge_metadata(current: Mapping[str, str], update: Any) -> dict[str, str]:
    """Stripe's rule: keys set to "" are removed, ``metadata=""`` empties it."""
    if update in (None, ""):
        return {} if update == "" else dict(current)
    if not isinstance(update, dict):
        raise StripeApiError(400, "Invalid object", code="parameter_invalid", param="metadata")
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return merged


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _list_object(url: str, data: list[dict[str, Any]], params: Mapping[str, Any]) -> dict[str, Any]:
    """A page of `data` (newest first) as Stripe lists: limit, starting_after, ending_before."""
    limit = min(max(_int(params.get("limit", 10), "limit"), 1), 100)
    ids = [item["id"] for item in data]
    if params.get("ending_before") in ids:
        before = data[: ids.index(params["ending_before"])]
        page, has_more = before[-limit:], len(before) > limit
    else:
        if params.get("starting_after") in ids:
            data = data[ids.index(params["starting_after"]) + 1 :]
        page, has_more = data[:limit], len(data) > limit
    return {"object": "list", "data": copy.deepcopy(page), "has_more": has_more, "url": url}


def _expands(params: Mapping[str, Any]) -> list[str]:
    value = params.get("expand") or []
    return [value] if isinstance(value, str) else [str(path) for path in value]


# --- Shapes ------------------------------------------------------------------------------------

PORTAL_FEATURES: dict[str, Any] = {
    "customer_update": {"allowed_updates": [], "enabled": False},
    "invoice_history": {"enabled": False},
    "payment_method_update": {"enabled": False, "payment_method_configuration": None},
    "subscription_cancel": {
        "cancellation_reason": {"enabled": False, "options": []},
        "enabled": False,
        "mode": "at_period_end",
        "proration_behavior": "none",
    },
    "subscription_update": {
        "billing_cycle_anchor": None,
        "default_allowed_updates": [],
        "enabled": False,
        "products": [],
        "proration_behavior": "none",
        "schedule_at_period_end": {"conditions": []},
        "trial_update_behavior": "end_trial",
    },
}

# Fields localstripe leaves out or null where Stripe answers a value (dj-stripe iterates them).
FILLED: dict[str, dict[str, Any]] = {
    "subscription": {"default_tax_rates": [], "discounts": []},
    "subscription_item": {"tax_rates": [], "discounts": []},
    "invoice": {"default_tax_rates": [], "discounts": [], "total_tax_amounts": []},
    "line_item": {"tax_rates": [], "discounts": [], "tax_amounts": []},
}

EXPAND_DEFAULTS: dict[str, Any] = {"discounts": [], "breakdown": {"discounts": [], "taxes": []}}


def _now() -> int:
    return int(time.time())


def _card_params(number: str) -> dict[str, Any]:
    year = datetime.now(tz=UTC).year + 5
    return {
        "type": "card",
        "card": {"number": number, "exp_month": 12, "exp_year": year, "cvc": "123"},
    }


# --- The proxy ---------------------------------------------------------------------------------


@dataclass
class _Call:
    params: dict[str, Any]
    ids: tuple[str, ...]
    auth: str


Handler = Callable[[_Call], dict[str, Any]]


class _ProxyHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: StripeServer


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections are dropped after this
    server: _ProxyHTTPServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            status, content_type, payload = self.server.owner._dispatch(
                self.command, self.path, dict(self.headers.items()), body
            )
        except Exception as exc:
            message = f"proxy error: {exc!r}\n{traceback.format_exc()}"
            error = StripeApiError(500, message, error_type="api_error")
            status, content_type = 500, "application/json"
            payload = json.dumps(error.body()).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Request-Id", random_id("req_", 14))
        self.send_header("Stripe-Should-Retry", "false")
        self.end_headers()
        self.wfile.write(payload)


class StripeServer:
    """localstripe on a loopback port, behind a recording proxy on another; see the module doc.

    ``url`` is the proxy's base URL (for ``stripe.api_base``), ``upstream_url`` localstripe's.
    ``prices``, ``checkout_sessions``, ``portal_configurations``, ``portal_sessions`` and
    ``webhook_endpoints`` hold what the proxy answers for, by id (endpoints with their secret).
    """

    def __init__(self, *, host: str = HOST, api_key: str = API_KEY) -> None:
        self.host = host
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.prices: dict[str, dict[str, Any]] = {}
        self.checkout_sessions: dict[str, dict[str, Any]] = {}
        self.portal_configurations: dict[str, dict[str, Any]] = {}
        self.portal_sessions: dict[str, dict[str, Any]] = {}
        self.webhook_endpoints: dict[str, dict[str, Any]] = {}
        self._checkout_lines: dict[str, list[dict[str, Any]]] = {}
        self._checkout_params: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._proxy: _ProxyHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.upstream_port = 0
        self.port = 0
        self.account_id = random_id("acct_", 16)
        self._created = _now()
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            (method, re.compile(f"^{pattern}$"), handler)
            for method, pattern, handler in (
                ("GET", r"/v1/account", self._account),
                ("GET", r"/v1/accounts/([^/]+)", self._account),
                ("GET", r"/v1/products/([^/]+)/features", self._product_features),
                ("POST", r"/v1/prices", self._price_create),
                ("GET", r"/v1/prices", self._price_list),
                ("GET", r"/v1/prices/([^/]+)", self._price_retrieve),
                ("POST", r"/v1/prices/([^/]+)", self._price_update),
                ("POST", r"/v1/checkout/sessions", self._checkout_create),
                ("GET", r"/v1/checkout/sessions", self._checkout_list),
                ("GET", r"/v1/checkout/sessions/([^/]+)", self._checkout_retrieve),
                ("GET", r"/v1/checkout/sessions/([^/]+)/line_items", self._checkout_lines_list),
                ("POST", r"/v1/checkout/sessions/([^/]+)/expire", self._checkout_expire),
                ("POST", r"/v1/billing_portal/configurations", self._portal_config_create),
                ("GET", r"/v1/billing_portal/configurations", self._portal_config_list),
                ("GET", r"/v1/billing_portal/configurations/([^/]+)", self._portal_config_get),
                ("POST", r"/v1/billing_portal/configurations/([^/]+)", self._portal_config_update),
                ("POST", r"/v1/billing_portal/sessions", self._portal_session_create),
                ("POST", r"/v1/webhook_endpoints", self._endpoint_create),
                ("GET", r"/v1/webhook_endpoints", self._endpoint_list),
                ("GET", r"/v1/webhook_endpoints/([^/]+)", self._endpoint_retrieve),
                ("POST", r"/v1/webhook_endpoints/([^/]+)", self._endpoint_update),
                ("DELETE", r"/v1/webhook_endpoints/([^/]+)", self._endpoint_delete),
            )
        ]

    # --- Lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def upstream_url(self) -> str:
        return f"http://{self.host}:{self.upstream_port}"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        try:
            self._start_upstream()
            proxy = _ProxyHTTPServer((self.host, 0), _ProxyHandler)
            proxy.owner = self
            self._proxy = proxy
            self.port = proxy.server_address[1]
            self._thread = threading.Thread(
                target=proxy.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
            )
            self._thread.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._proxy is not None:
            self._proxy.shutdown()
            self._proxy.server_close()
            self._proxy = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._stop_upstream()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _start_upstream(self) -> None:
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)
        deadline = time.monotonic() + START_TIMEOUT
        for _attempt in range(3):  # another process may take the port between probe and bind
            with socket.socket() as sock:
                sock.bind((self.host, 0))
                self.upstream_port = sock.getsockname()[1]
            self._process = subprocess.Popen(
                [sys.executable, "-c", BOOTSTRAP, self.host, str(self.upstream_port)],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            if self._wait_upstream(self._process, deadline):
                return
            self._stop_upstream()
        self._log.seek(0)
        output = self._log.read().decode(errors="replace")[-2000:]
        raise RuntimeError(f"localstripe did not start on {self.host}:\n{output}")

    def _wait_upstream(self, process: subprocess.Popen[bytes], deadline: float) -> bool:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                status, body = self._upstream("GET", "/v1/balance")
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
                continue
            return status == 200 and isinstance(body, dict) and "available" in body
        return False

    def _stop_upstream(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    # --- Record ------------------------------------------------------------------------------

    def clear(self) -> None:
        """Forget the recorded requests (the objects stay)."""
        with self._lock:
            self.requests.clear()

    def requests_to(self, path_prefix: str, method: str | None = None) -> list[Recorded]:
        """The recorded requests whose path starts with `path_prefix` (and of `method`)."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.path.startswith(path_prefix) and (method is None or r.method == method)
            ]

    def reset(self) -> None:
        """Forget everything: the record, the proxy's objects and localstripe's store."""
        status, body = self._upstream("DELETE", "/_config/data")
        if status >= 400:
            raise StripeApiError.upstream(status, body)
        with self._lock:
            self.requests.clear()
            for store in (
                self.prices,
                self.checkout_sessions,
                self.portal_configurations,
                self.portal_sessions,
                self.webhook_endpoints,
                self._checkout_lines,
                self._checkout_params,
            ):
                store.clear()

    # --- Helpers for tests -------------------------------------------------------------------

    def attach_card(self, customer_id: str, number: str = CARD_OK) -> str:
        """A card payment method attached to the customer as its default; its id."""
        method = self._upstream_ok("POST", "/v1/payment_methods", _card_params(number))
        self._upstream_ok(
            "POST", f"/v1/payment_methods/{method['id']}/attach", {"customer": customer_id}
        )
        self._upstream_ok(
            "POST",
            f"/v1/customers/{customer_id}",
            {"invoice_settings": {"default_payment_method": method["id"]}},
        )
        return str(method["id"])

    def subscribe(
        self,
        customer_id: str,
        price_id: str,
        *,
        card_ok: bool = True,
        quantity: int = 1,
        metadata: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Subscribe the customer to the price, paying with a new default card.

        With ``card_ok`` the card pays and the subscription is ``active``; without, the charge is
        declined and it stays ``incomplete``, its first invoice ``open`` (see ``latest_invoice``).
        Answers the subscription as the proxy would (``price`` on its items).
        """
        self.attach_card(customer_id, CARD_OK if card_ok else CARD_DECLINED)
        subscription = self._upstream_ok(
            "POST",
            "/v1/subscriptions",
            {
                "customer": customer_id,
                "items": [{"plan": price_id, "quantity": quantity}],
                "metadata": dict(metadata or {}),
            },
        )
        return self._augmented(subscription)

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        """The subscription as the proxy answers it."""
        return self._augmented(self._upstream_ok("GET", f"/v1/subscriptions/{subscription_id}"))

    def fail_renewal(self, subscription_id: str) -> dict[str, Any]:
        """Make an active subscription ``past_due``, as a failed renewal does.

        A new invoice for the subscription is charged to a card that asks for 3-D Secure, which
        then fails: the invoice stays ``open`` and is the subscription's ``latest_invoice``; the
        customer's default card is that one from now on. Answers the subscription.
        """
        subscription = self.subscription(subscription_id)
        if subscription["status"] != "active":
            raise ValueError(f"{subscription_id} is {subscription['status']}, not active")
        customer = subscription["customer"]
        self.attach_card(customer, CARD_3DS)
        invoice = self._upstream_ok(
            "POST", "/v1/invoices", {"customer": customer, "subscription": subscription_id}
        )
        invoice = self._upstream_ok("POST", f"/v1/invoices/{invoice['id']}/pay")
        intent = self._upstream_ok("GET", f"/v1/payment_intents/{invoice['payment_intent']}")
        self._upstream_ok(
            "POST",
            f"/v1/payment_intents/{intent['id']}/_authenticate",
            {"client_secret": intent["client_secret"], "success": "false"},
        )
        return self.subscription(subscription_id)

    def pay_latest_invoice(self, subscription_id: str, number: str = CARD_OK) -> dict[str, Any]:
        """Pay the subscription's open latest invoice with a new default card (``number``).

        An ``incomplete`` or ``past_due`` subscription becomes ``active`` when it is paid (with
        ``CARD_DECLINED`` the charge fails and nothing changes). Answers the subscription.
        """
        subscription = self.subscription(subscription_id)
        self.attach_card(subscription["customer"], number)
        self._upstream_ok("POST", f"/v1/invoices/{subscription['latest_invoice']}/pay")
        return self.subscription(subscription_id)

    def complete_checkout(self, session_id: str) -> dict[str, Any]:
        """Play the customer completing a checkout session, paying with ``CARD_OK``.

        In subscription mode the customer (created from ``customer_email`` if the session had
        none) is subscribed to the session's recurring price with the session's
        ``subscription_data[metadata]``; the session becomes ``complete``, ``paid``, with its
        ``customer``, ``subscription`` and ``invoice`` set. Answers the session.
        """
        with self._lock:
            session = self.checkout_sessions.get(session_id)
            if session is None:
                raise _missing("checkout.session", session_id)
            if session["status"] != "open":
                raise ValueError(f"{session_id} is {session['status']}, not open")
            params = self._checkout_params[session_id]
            lines = self._checkout_lines[session_id]
            customer = session["customer"]
            if customer is None:
                created = self._upstream_ok(
                    "POST", "/v1/customers", {"email": session["customer_email"]}
                )
                customer = created["id"]
            if session["mode"] == "subscription":
                line = next(line for line in lines if line["price"]["type"] == "recurring")
                data = params.get("subscription_data") or {}
                subscription = self.subscribe(
                    customer,
                    line["price"]["id"],
                    quantity=line["quantity"],
                    metadata=data.get("metadata") or {},
                )
                session["subscription"] = subscription["id"]
                session["invoice"] = subscription["latest_invoice"]
            else:
                self.attach_card(customer)
            email = session["customer_email"] or self._upstream_ok(
                "GET", f"/v1/customers/{customer}"
            ).get("email")
            session.update(
                customer=customer,
                status="complete",
                payment_status="no_payment_required" if session["mode"] == "setup" else "paid",
                customer_details={
                    "address": None,
                    "email": email,
                    "name": None,
                    "phone": None,
                    "tax_exempt": "none",
                    "tax_ids": [],
                },
                url=None,
            )
            return copy.deepcopy(session)

    def webhook_secret(self, endpoint_id: str) -> str:
        """The signing secret of a webhook endpoint created through the proxy."""
        with self._lock:
            return str(self.webhook_endpoints[endpoint_id]["secret"])

    # --- Talking to localstripe --------------------------------------------------------------

    def _upstream_raw(
        self, method: str, target: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, bytes, str]:
        conn = http.client.HTTPConnection(self.host, self.upstream_port, timeout=UPSTREAM_TIMEOUT)
        try:
            conn.request(method, target, body=body, headers=dict(headers))
            response = conn.getresponse()
            return response.status, response.read(), response.getheader("Content-Type") or ""
        finally:
            conn.close()

    def _upstream(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        auth: str | None = None,
    ) -> tuple[int, Any]:
        headers = {"Authorization": auth or f"Bearer {self.api_key}"}
        encoded = encode_params(params or {})
        body: bytes | None = None
        if method == "POST":
            body = encoded.encode()
            headers["Content-Type"] = FORM
        elif encoded:
            path = f"{path}?{encoded}"
        status, data, _ = self._upstream_raw(method, path, body, headers)
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, data.decode(errors="replace")

    def _upstream_ok(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        auth: str | None = None,
    ) -> dict[str, Any]:
        status, body = self._upstream(method, path, params, auth=auth)
        if status >= 400 or not isinstance(body, dict):
            raise StripeApiError.upstream(status, body)
        return body

    def _require_upstream(self, kind: str, ident: Any, param: str, auth: str) -> dict[str, Any]:
        if not isinstance(ident, str) or not ident:
            raise _missing(kind, str(ident), param)
        status, body = self._upstream("GET", f"/v1/{kind}s/{quote(ident, safe='')}", auth=auth)
        if status == 404:
            raise _missing(kind, ident, param)
        if status >= 400 or not isinstance(body, dict):
            raise StripeApiError.upstream(status, body)
        return body

    # --- Dispatch ----------------------------------------------------------------------------

    def _dispatch(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, str, bytes]:
        split = urlsplit(target)
        path = split.path
        query = decode_params(parse_qsl(split.query, keep_blank_values=True))
        lowered = {key.lower(): value for key, value in headers.items()}
        params = dict(query)
        if body:
            if lowered.get("content-type", "").startswith("application/json"):
                loaded = json.loads(body)
                params.update(loaded if isinstance(loaded, dict) else {})
            else:
                pairs = parse_qsl(body.decode(), keep_blank_values=True)
                params.update(decode_params(pairs))
        with self._lock:
            self.requests.append(Recorded(method, path, copy.deepcopy(params)))

        page = re.match(r"^/(checkout|p/session|p/login)/([^/]+)$", path)
        if method == "GET" and page:
            title, ident = (html.escape(part) for part in page.groups())
            text = f"<!doctype html><title>Stripe {title}</title><p>{ident}</p>"
            return 200, "text/html; charset=utf-8", text.encode()

        for route_method, pattern, handler in self._routes:
            match = pattern.match(path)
            if route_method != method or not match:
                continue
            auth = lowered.get("authorization", "")
            try:
                if not re.match(r"^(Bearer sk_|Basic )", auth):
                    raise StripeApiError(
                        401,
                        "You did not provide an API key. You need to provide your API key in "
                        "the Authorization header, using Bearer auth.",
                    )
                with self._lock:
                    answer = handler(_Call(params, match.groups(), auth))
                return 200, "application/json", json.dumps(answer, indent=2).encode()
            except StripeApiError as error:
                return error.status, "application/json", json.dumps(error.body()).encode()

        return self._forward(method, path, split.query, params, lowered, body)

    def _forward(
        self,
        method: str,
        path: str,
        raw_query: str,
        params: dict[str, Any],
        headers: Mapping[str, str],
        body: bytes,
    ) -> tuple[int, str, bytes]:
        forwarded = {key: value for key, value in headers.items() if key in FORWARDED_HEADERS}
        rewritten = self._rewrite_request(method, path, params)
        if rewritten is not None:
            body = encode_params(rewritten).encode()
            forwarded["content-type"] = FORM
        query = decode_params(parse_qsl(raw_query, keep_blank_values=True))
        dropped: list[str] = []
        while True:
            target = f"{path}?{raw_query}" if raw_query else path
            status, data, content_type = self._upstream_raw(
                method, target, body if method == "POST" else None, forwarded
            )
            bad = _bad_expand(status, data) if method == "GET" else None
            expands = _expands(query)
            failing = [p for p in expands if bad in p.split(".")]
            if bad is None or not failing:
                break
            dropped += failing
            query = {**query, "expand": [p for p in expands if p not in failing]}
            raw_query = encode_params(query)
        if status >= 400 and not content_type.startswith("application/json"):
            # aiohttp's own answers: no route (404, 405) or a crash in localstripe (500).
            if status in (404, 405):
                message = f"Unrecognized request URL ({method}: {path})."
                error = StripeApiError(404, message)
            else:
                text = data.decode(errors="replace").strip()
                error = StripeApiError(status, f"localstripe: {text}", error_type="api_error")
            return error.status, "application/json", json.dumps(error.body()).encode()
        if not content_type.startswith("application/json"):
            return status, content_type or "application/octet-stream", data
        try:
            answer = json.loads(data)
        except ValueError:
            return status, content_type, data
        if status < 400:
            for expand_path in dropped:
                _fill_expanded(answer, expand_path.split("."))
            answer = self._augmented(answer)
        return status, "application/json", json.dumps(answer, indent=2).encode()

    @staticmethod
    def _rewrite_request(method: str, path: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """Stripe's ``price`` on subscription items, as the ``plan`` localstripe knows."""
        if method != "POST":
            return None
        if path == "/v1/subscription_items" and "price" in params and "plan" not in params:
            changed = copy.deepcopy(params)
            changed["plan"] = changed.pop("price")
            return changed
        writes = r"^/v1/(subscriptions(/[^/]+)?|customers/[^/]+/subscriptions(/[^/]+)?)$"
        items = params.get("items")
        if not re.match(writes, path) or not isinstance(items, list):
            return None
        if not any(isinstance(i, dict) and "price" in i and "plan" not in i for i in items):
            return None
        changed = copy.deepcopy(params)
        for item in changed["items"]:
            if isinstance(item, dict) and "price" in item and "plan" not in item:
                item["plan"] = item.pop("price")
        return changed

    # --- Answers made like Stripe's ----------------------------------------------------------

    def _augmented(self, answer: Any) -> Any:
        with self._lock:
            self._augment(answer)
        return answer

    def _augment(self, node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                self._augment(item)
            return
        if not isinstance(node, dict):
            return
        for value in node.values():
            self._augment(value)
        kind = node.get("object")
        plan = node.get("plan")
        if kind in ("subscription_item", "line_item", "invoiceitem") and isinstance(plan, dict):
            node.setdefault("price", self._price_for_plan(plan))
        if kind == "line_item" and isinstance(node.get("price"), dict):
            price = node["price"]
            node.setdefault(
                "pricing",
                {
                    "type": "price_details",
                    "price_details": {"price": price["id"], "product": price["product"]},
                    "unit_amount_decimal": price["unit_amount_decimal"],
                },
            )
        if kind == "subscription":
            items = node.get("items")
            data = items.get("data") if isinstance(items, dict) else None
            for item in data or []:
                if isinstance(item, dict):
                    item.setdefault("subscription", node.get("id"))
                    for field in ("current_period_start", "current_period_end"):
                        if field in node:
                            item.setdefault(field, node[field])
            for field in ("current_period_start", "current_period_end"):
                if field not in node and data and isinstance(data[0], dict) and field in data[0]:
                    node[field] = data[0][field]
        for field, default in FILLED.get(str(kind), {}).items():
            if node.get(field) is None:
                node[field] = copy.deepcopy(default)
        if kind == "customer" and "balance" not in node:
            account_balance = node.get("account_balance")
            node["balance"] = -account_balance if isinstance(account_balance, int) else 0

    def _price_for_plan(self, plan: Mapping[str, Any]) -> dict[str, Any]:
        known = self.prices.get(str(plan.get("id")))
        if known is not None:
            return copy.deepcopy(known)
        amount = plan.get("amount")
        return self._price_object(
            price_id=str(plan.get("id")),
            product=plan.get("product"),
            currency=str(plan.get("currency")),
            unit_amount=amount if isinstance(amount, int) else None,
            recurring={
                "interval": plan.get("interval"),
                "interval_count": plan.get("interval_count") or 1,
                "meter": None,
                "trial_period_days": plan.get("trial_period_days"),
                "usage_type": plan.get("usage_type") or "licensed",
            },
            lookup_key=None,
            metadata=dict(plan.get("metadata") or {}),
            nickname=plan.get("nickname"),
            active=bool(plan.get("active", True)),
            billing_scheme=str(plan.get("billing_scheme") or "per_unit"),
            tiers_mode=plan.get("tiers_mode"),
            tax_behavior="unspecified",
            created=int(plan.get("created") or _now()),
        )

    @staticmethod
    def _price_object(
        *,
        price_id: str,
        product: Any,
        currency: str,
        unit_amount: int | None,
        recurring: dict[str, Any] | None,
        lookup_key: str | None,
        metadata: dict[str, str],
        nickname: str | None,
        active: bool,
        billing_scheme: str,
        tiers_mode: str | None,
        tax_behavior: str,
        created: int,
    ) -> dict[str, Any]:
        return {
            "id": price_id,
            "object": "price",
            "active": active,
            "billing_scheme": billing_scheme,
            "created": created,
            "currency": currency,
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": lookup_key,
            "metadata": metadata,
            "nickname": nickname,
            "product": product,
            "recurring": recurring,
            "tax_behavior": tax_behavior,
            "tiers_mode": tiers_mode,
            "transform_quantity": None,
            "type": "recurring" if recurring else "one_time",
            "unit_amount": unit_amount,
            "unit_amount_decimal": None if unit_amount is None else str(unit_amount),
        }

    # --- Account -----------------------------------------------------------------------------

    def _account(self, call: _Call) -> dict[str, Any]:
        """The account the API key belongs to (dj-stripe looks it up before syncing anything)."""
        if call.ids and call.ids[0] != self.account_id:
            raise _missing("account", call.ids[0], "account")
        return {
            "id": self.account_id,
            "object": "account",
            "business_profile": {
                "mcc": None,
                "name": "TrustGate (local Stripe)",
                "support_email": None,
                "support_phone": None,
                "support_url": None,
                "url": None,
            },
            "business_type": None,
            "capabilities": {"card_payments": "active", "transfers": "active"},
            "charges_enabled": True,
            "controller": {"type": "account"},
            "country": "US",
            "created": self._created,
            "default_currency": "usd",
            "details_submitted": True,
            "email": "billing@example.com",
            "metadata": {},
            "payouts_enabled": True,
            "settings": {
                "branding": {
                    "icon": None,
                    "logo": None,
                    "primary_color": None,
                    "secondary_color": None,
                },
                "dashboard": {"display_name": "TrustGate", "timezone": "Etc/UTC"},
            },
            "type": "standard",
        }

    def _product_features(self, call: _Call) -> dict[str, Any]:
        """No product has features (dj-stripe lists them when it syncs a product)."""
        self._require_upstream("product", call.ids[0], "product", call.auth)
        return _list_object(f"/v1/products/{call.ids[0]}/features", [], call.params)

    # --- Prices ------------------------------------------------------------------------------

    def _price_create(self, call: _Call) -> dict[str, Any]:
        _check_params(call.params, PriceCreateParams)
        price = self._make_price(call.params, call.auth)
        return self._price_answer(price, _expands(call.params), call.auth)

    def _make_price(self, params: Mapping[str, Any], auth: str) -> dict[str, Any]:
        """A new price from create parameters (or a line item's ``price_data``)."""
        product = params.get("product")
        product_data = params.get("product_data")
        if bool(product) == bool(product_data):
            raise StripeApiError(
                400,
                "You must specify either `product` or `product_data` when creating a price.",
                param="product",
            )
        billing_scheme = str(params.get("billing_scheme") or "per_unit")
        unit_amount: int | None = None
        if params.get("unit_amount") not in (None, ""):
            unit_amount = _int(params["unit_amount"], "unit_amount")
        elif params.get("unit_amount_decimal") not in (None, ""):
            try:
                decimal = Decimal(str(params["unit_amount_decimal"]))
            except InvalidOperation:
                raise StripeApiError(
                    400, "Invalid decimal", code="parameter_invalid", param="unit_amount_decimal"
                ) from None
            unit_amount = int(decimal)
        elif billing_scheme == "per_unit" and not params.get("custom_unit_amount"):
            raise _required("unit_amount")
        if unit_amount is not None and unit_amount < 0:
            raise StripeApiError(
                400,
                "This value must be greater than or equal to 0.",
                code="parameter_invalid",
                param="unit_amount",
            )
        recurring: dict[str, Any] | None = None
        if params.get("recurring"):
            given = params["recurring"]
            interval = given.get("interval") if isinstance(given, dict) else None
            if interval not in ("day", "week", "month", "year"):
                raise StripeApiError(
                    400,
                    "Invalid recurring[interval]: must be one of day, week, month, or year",
                    code="parameter_invalid",
                    param="recurring[interval]",
                )
            recurring = {
                "interval": interval,
                "interval_count": _int(given.get("interval_count", 1), "recurring[interval_count]"),
                "meter": given.get("meter"),
                "trial_period_days": None,
                "usage_type": given.get("usage_type") or "licensed",
            }
        lookup_key = params.get("lookup_key") or None
        if lookup_key is not None:
            holder = next((p for p in self.prices.values() if p["lookup_key"] == lookup_key), None)
            if holder is not None:
                if not _bool(params.get("transfer_lookup_key", False), "transfer_lookup_key"):
                    raise StripeApiError(
                        400,
                        f"A price (`{holder['id']}`) already uses that lookup key.",
                        param="lookup_key",
                    )
                holder["lookup_key"] = None
        metadata = _merge_metadata({}, params.get("metadata"))
        active = _bool(params.get("active", True), "active")
        currency = str(params.get("currency", "")).lower()
        if product_data:
            if not isinstance(product_data, dict) or not product_data.get("name"):
                raise _required("product_data[name]")
            fields = {
                key: product_data[key]
                for key in ("name", "active", "metadata", "statement_descriptor")
                if key in product_data
            }
            product = self._upstream_ok("POST", "/v1/products", fields, auth=auth)["id"]
        else:
            self._require_upstream("product", product, "product", auth)
        price_id = random_id("price_")
        if recurring is not None:
            plan: dict[str, Any] = {
                "id": price_id,
                "product": product,
                "currency": currency,
                "interval": recurring["interval"],
                "interval_count": recurring["interval_count"],
                "usage_type": recurring["usage_type"],
                "metadata": metadata,
                "active": active,
                "nickname": params.get("nickname"),
                "billing_scheme": billing_scheme,
            }
            if billing_scheme == "tiered":
                plan["tiers_mode"] = params.get("tiers_mode")
                plan["tiers"] = [
                    {k: tier[k] for k in ("up_to", "unit_amount", "flat_amount") if k in tier}
                    for tier in params.get("tiers") or []
                ]
            else:
                plan["amount"] = unit_amount or 0
            self._upstream_ok("POST", "/v1/plans", plan, auth=auth)
        price = self._price_object(
            price_id=price_id,
            product=product,
            currency=currency,
            unit_amount=unit_amount,
            recurring=recurring,
            lookup_key=lookup_key,
            metadata=metadata,
            nickname=params.get("nickname"),
            active=active,
            billing_scheme=billing_scheme,
            tiers_mode=params.get("tiers_mode"),
            tax_behavior=str(params.get("tax_behavior") or "unspecified"),
            created=_now(),
        )
        self.prices[price_id] = price
        return price

    def _price_answer(self, price: dict[str, Any], expand: list[str], auth: str) -> dict[str, Any]:
        answer = copy.deepcopy(price)
        heads = {path.removeprefix("data.") for path in expand}
        if "product" in heads and isinstance(answer["product"], str):
            answer["product"] = self._require_upstream("product", answer["product"], "id", auth)
        if "currency_options" in heads:
            answer["currency_options"] = {
                answer["currency"]: {
                    "custom_unit_amount": None,
                    "tax_behavior": answer["tax_behavior"],
                    "unit_amount": answer["unit_amount"],
                    "unit_amount_decimal": answer["unit_amount_decimal"],
                }
            }
        if "tiers" in heads:
            answer["tiers"] = None if answer["billing_scheme"] == "per_unit" else []
        return answer

    def _price(self, price_id: str, param: str = "id") -> dict[str, Any]:
        price = self.prices.get(price_id)
        if price is None:
            raise _missing("price", price_id, param)
        return price

    def _price_retrieve(self, call: _Call) -> dict[str, Any]:
        return self._price_answer(self._price(call.ids[0]), _expands(call.params), call.auth)

    def _price_update(self, call: _Call) -> dict[str, Any]:
        _check_params(call.params, PriceModifyParams)
        price = self._price(call.ids[0])
        params = call.params
        if "lookup_key" in params:
            lookup_key = params["lookup_key"] or None
            holder = next(
                (
                    p
                    for p in self.prices.values()
                    if lookup_key and p["lookup_key"] == lookup_key and p is not price
                ),
                None,
            )
            if holder is not None:
                if not _bool(params.get("transfer_lookup_key", False), "transfer_lookup_key"):
                    raise StripeApiError(
                        400,
                        f"A price (`{holder['id']}`) already uses that lookup key.",
                        param="lookup_key",
                    )
                holder["lookup_key"] = None
            price["lookup_key"] = lookup_key
        if "active" in params:
            price["active"] = _bool(params["active"], "active")
        if "nickname" in params:
            price["nickname"] = params["nickname"] or None
        if "metadata" in params:
            price["metadata"] = _merge_metadata(price["metadata"], params["metadata"])
        if "tax_behavior" in params:
            price["tax_behavior"] = params["tax_behavior"]
        return self._price_answer(price, _expands(params), call.auth)

    def _price_list(self, call: _Call) -> dict[str, Any]:
        params = call.params
        prices = list(reversed(self.prices.values()))
        if "active" in params:
            active = _bool(params["active"], "active")
            prices = [p for p in prices if p["active"] == active]
        if params.get("lookup_keys"):
            keys = params["lookup_keys"]
            keys = [keys] if isinstance(keys, str) else list(keys)
            prices = [p for p in prices if p["lookup_key"] in keys]
        if params.get("product"):
            prices = [p for p in prices if p["product"] == params["product"]]
        if params.get("currency"):
            prices = [p for p in prices if p["currency"] == str(params["currency"]).lower()]
        if params.get("type"):
            prices = [p for p in prices if p["type"] == params["type"]]
        interval = (params.get("recurring") or {}).get("interval")
        if interval:
            prices = [p for p in prices if (p["recurring"] or {}).get("interval") == interval]
        page = _list_object("/v1/prices", prices, params)
        expand = [path for path in _expands(params) if path.startswith("data.")]
        page["data"] = [self._price_answer(p, expand, call.auth) for p in page["data"]]
        return page

    # --- Checkout Sessions -------------------------------------------------------------------

    def _checkout_create(self, call: _Call) -> dict[str, Any]:
        params = call.params
        _check_params(params, CheckoutSessionCreateParams)
        mode = params.get("mode") or "payment"
        if mode not in ("payment", "setup", "subscription"):
            raise StripeApiError(
                400,
                "Invalid mode: must be one of payment, setup, or subscription",
                code="parameter_invalid",
                param="mode",
            )
        customer = params.get("customer") or None
        if customer and params.get("customer_email"):
            raise StripeApiError(
                400,
                "You may only specify one of these parameters: customer, customer_email.",
                param="customer_email",
            )
        if customer:
            self._require_upstream("customer", customer, "customer", call.auth)
        given = params.get("line_items") or []
        if not isinstance(given, list):
            raise StripeApiError(400, "Invalid array", code="parameter_invalid", param="line_items")
        if mode != "setup" and not given:
            raise StripeApiError(
                400,
                f"`line_items` is required in `{mode}` mode.",
                code="parameter_missing",
                param="line_items",
            )
        session_id = "cs_test_" + random_id("a1", 56)
        lines: list[dict[str, Any]] = []
        for index, item in enumerate(given):
            item = item if isinstance(item, dict) else {}
            if item.get("price"):
                price = self._price(str(item["price"]), f"line_items[{index}][price]")
            elif isinstance(item.get("price_data"), dict):
                price = self._make_price({**item["price_data"], "active": "false"}, call.auth)
            else:
                raise StripeApiError(
                    400,
                    f"You must specify either `price` or `price_data` in line_items[{index}].",
                    param=f"line_items[{index}]",
                )
            if mode == "payment" and price["type"] == "recurring":
                raise StripeApiError(
                    400,
                    "You specified `payment` mode but passed a recurring price. Either switch "
                    "to `subscription` mode or use only one-time prices.",
                    param="mode",
                )
            quantity = _int(item.get("quantity", 1), f"line_items[{index}][quantity]")
            amount = (price["unit_amount"] or 0) * quantity
            product = self._require_upstream("product", price["product"], "product", call.auth)
            lines.append(
                {
                    "id": random_id("li_"),
                    "object": "item",
                    "amount_discount": 0,
                    "amount_subtotal": amount,
                    "amount_tax": 0,
                    "amount_total": amount,
                    "currency": price["currency"],
                    "description": product.get("name"),
                    "discounts": [],
                    "price": copy.deepcopy(price),
                    "quantity": quantity,
                }
            )
        if mode == "subscription" and not any(
            line["price"]["type"] == "recurring" for line in lines
        ):
            raise StripeApiError(
                400,
                "You must provide at least one recurring price in `subscription` mode when "
                "using prices.",
                param="line_items",
            )
        subtotal = sum(line["amount_subtotal"] for line in lines) if mode != "setup" else None
        created = _now()
        automatic_tax = params.get("automatic_tax") or {}
        session: dict[str, Any] = {
            "id": session_id,
            "object": "checkout.session",
            "after_expiration": None,
            "allow_promotion_codes": (
                _bool(params["allow_promotion_codes"], "allow_promotion_codes")
                if "allow_promotion_codes" in params
                else None
            ),
            "amount_subtotal": subtotal,
            "amount_total": subtotal,
            "automatic_tax": {
                "enabled": _bool(automatic_tax.get("enabled", False), "automatic_tax[enabled]"),
                "liability": None,
                "status": None,
            },
            "billing_address_collection": params.get("billing_address_collection"),
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"),
            "client_secret": None,
            "consent": None,
            "consent_collection": None,
            "created": created,
            "currency": lines[0]["currency"] if lines else params.get("currency"),
            "custom_fields": [],
            "customer": customer,
            "customer_creation": None if customer or mode == "subscription" else "if_required",
            "customer_details": None,
            "customer_email": params.get("customer_email"),
            "expires_at": _int(params.get("expires_at", created + 86400), "expires_at"),
            "invoice": None,
            "invoice_creation": None,
            "livemode": False,
            "locale": params.get("locale"),
            "metadata": _merge_metadata({}, params.get("metadata")),
            "mode": mode,
            "payment_intent": None,
            "payment_link": None,
            "payment_method_collection": params.get("payment_method_collection", "always"),
            "payment_method_types": params.get("payment_method_types") or ["card"],
            "payment_status": "no_payment_required" if mode == "setup" else "unpaid",
            "phone_number_collection": {"enabled": False},
            "recovered_from": None,
            "setup_intent": None,
            "shipping_address_collection": None,
            "shipping_options": [],
            "status": "open",
            "submit_type": params.get("submit_type"),
            "subscription": None,
            "success_url": params.get("success_url"),
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": params.get("ui_mode", "hosted"),
            "url": f"{self.url}/checkout/{session_id}",
        }
        self.checkout_sessions[session_id] = session
        self._checkout_lines[session_id] = lines
        self._checkout_params[session_id] = copy.deepcopy(params)
        return self._checkout_answer(session_id, _expands(params), call.auth)

    def _checkout_answer(self, session_id: str, expand: list[str], auth: str) -> dict[str, Any]:
        answer = copy.deepcopy(self.checkout_sessions[session_id])
        heads = {path.split(".")[0] for path in expand}
        if "line_items" in heads:
            answer["line_items"] = self._checkout_lines_page(session_id, {})
        if "total_details.breakdown" in expand:
            answer["total_details"]["breakdown"] = {"discounts": [], "taxes": []}
        for kind in ("customer", "subscription", "invoice"):
            if kind in heads and isinstance(answer.get(kind), str):
                found = self._require_upstream(kind, answer[kind], kind, auth)
                answer[kind] = self._augmented(found)
        return answer

    def _checkout_session(self, session_id: str) -> dict[str, Any]:
        session = self.checkout_sessions.get(session_id)
        if session is None:
            raise _missing("checkout.session", session_id, "session")
        return session

    def _checkout_retrieve(self, call: _Call) -> dict[str, Any]:
        self._checkout_session(call.ids[0])
        return self._checkout_answer(call.ids[0], _expands(call.params), call.auth)

    def _checkout_list(self, call: _Call) -> dict[str, Any]:
        sessions = list(reversed(self.checkout_sessions.values()))
        for field in ("customer", "subscription", "status", "payment_intent"):
            if call.params.get(field):
                sessions = [s for s in sessions if s.get(field) == call.params[field]]
        return _list_object("/v1/checkout/sessions", sessions, call.params)

    def _checkout_lines_page(self, session_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        url = f"/v1/checkout/sessions/{session_id}/line_items"
        return _list_object(url, list(self._checkout_lines[session_id]), params)

    def _checkout_lines_list(self, call: _Call) -> dict[str, Any]:
        self._checkout_session(call.ids[0])
        return self._checkout_lines_page(call.ids[0], call.params)

    def _checkout_expire(self, call: _Call) -> dict[str, Any]:
        session = self._checkout_session(call.ids[0])
        if session["status"] != "open":
            raise StripeApiError(
                400,
                f'Only Checkout Sessions with a status in ["open"] can be expired. This '
                f'Checkout Session has a status of "{session["status"]}".',
            )
        session.update(status="expired", url=None)
        return self._checkout_answer(call.ids[0], _expands(call.params), call.auth)

    # --- Customer Portal ---------------------------------------------------------------------

    def _portal_settings(self, params: Mapping[str, Any], base: dict[str, Any]) -> dict[str, Any]:
        """The configuration `base` with `params` applied (features and profile deep-merged)."""
        config = copy.deepcopy(base)
        if "features" in params:
            features = _coerce_bools(params["features"])
            if not isinstance(features, dict):
                raise StripeApiError(400, "Invalid object", param="features")
            for product in (features.get("subscription_update") or {}).get("products") or []:
                prices = (product.get("prices") or []) if isinstance(product, dict) else []
                for price_id in prices:
                    price = self._price(str(price_id), "features[subscription_update][products]")
                    if price["product"] != product.get("product"):
                        raise StripeApiError(
                            400,
                            f"The price `{price_id}` does not belong to the product "
                            f"`{product.get('product')}`.",
                            param="features[subscription_update][products]",
                        )
            config["features"] = _deep_merge(config["features"], features)
        if "business_profile" in params:
            profile = params["business_profile"]
            if isinstance(profile, dict):
                profile = {key: value or None for key, value in profile.items()}
                config["business_profile"] = _deep_merge(config["business_profile"], profile)
        if "login_page" in params:
            login = _coerce_bools(params["login_page"]) or {}
            enabled = bool(login.get("enabled"))
            url = f"{self.url}/p/login/{random_id('test_', 16)}" if enabled else None
            config["login_page"] = {"enabled": enabled, "url": url}
        if "default_return_url" in params:
            config["default_return_url"] = params["default_return_url"] or None
        if "name" in params:
            config["name"] = params["name"] or None
        if "active" in params:
            config["active"] = _bool(params["active"], "active")
        if "metadata" in params:
            config["metadata"] = _merge_metadata(config["metadata"], params["metadata"])
        config["updated"] = _now()
        return config

    def _new_portal_config(self, params: Mapping[str, Any], *, is_default: bool) -> dict[str, Any]:
        created = _now()
        base: dict[str, Any] = {
            "id": random_id("bpc_"),
            "object": "billing_portal.configuration",
            "active": True,
            "application": None,
            "business_profile": {
                "headline": None,
                "privacy_policy_url": None,
                "terms_of_service_url": None,
            },
            "created": created,
            "default_return_url": None,
            "features": copy.deepcopy(PORTAL_FEATURES),
            "is_default": is_default,
            "livemode": False,
            "login_page": {"enabled": False, "url": None},
            "metadata": {},
            "name": None,
            "updated": created,
        }
        config = self._portal_settings(params, base)
        self.portal_configurations[config["id"]] = config
        return config

    def _portal_config(self, config_id: str, param: str = "id") -> dict[str, Any]:
        config = self.portal_configurations.get(config_id)
        if config is None:
            raise _missing("configuration", config_id, param)
        return config

    def _portal_config_create(self, call: _Call) -> dict[str, Any]:
        _check_params(call.params, ConfigurationCreateParams)
        return copy.deepcopy(self._new_portal_config(call.params, is_default=False))

    def _portal_config_update(self, call: _Call) -> dict[str, Any]:
        _check_params(call.params, ConfigurationModifyParams)
        config = self._portal_settings(call.params, self._portal_config(call.ids[0]))
        self.portal_configurations[config["id"]] = config
        return copy.deepcopy(config)

    def _portal_config_get(self, call: _Call) -> dict[str, Any]:
        return copy.deepcopy(self._portal_config(call.ids[0]))

    def _portal_config_list(self, call: _Call) -> dict[str, Any]:
        configs = list(reversed(self.portal_configurations.values()))
        if "active" in call.params:
            active = _bool(call.params["active"], "active")
            configs = [c for c in configs if c["active"] == active]
        if "is_default" in call.params:
            is_default = _bool(call.params["is_default"], "is_default")
            configs = [c for c in configs if c["is_default"] == is_default]
        return _list_object("/v1/billing_portal/configurations", configs, call.params)

    def _portal_session_create(self, call: _Call) -> dict[str, Any]:
        params = call.params
        _check_params(params, PortalSessionCreateParams)
        if not params.get("customer"):
            raise _required("customer")
        customer = str(params["customer"])
        self._require_upstream("customer", customer, "customer", call.auth)
        if params.get("configuration"):
            config = self._portal_config(str(params["configuration"]), "configuration")
        else:
            defaults = [c for c in self.portal_configurations.values() if c["is_default"]]
            config = defaults[0] if defaults else self._new_portal_config({}, is_default=True)
        flow = None
        if isinstance(params.get("flow_data"), dict):
            flow = _deep_merge(
                {
                    "after_completion": {
                        "hosted_confirmation": None,
                        "redirect": None,
                        "type": "portal_homepage",
                    },
                    "subscription_cancel": None,
                    "subscription_update": None,
                    "subscription_update_confirm": None,
                },
                params["flow_data"],
            )
        session_id = random_id("bps_")
        session = {
            "id": session_id,
            "object": "billing_portal.session",
            "configuration": config["id"],
            "created": _now(),
            "customer": customer,
            "flow": flow,
            "livemode": False,
            "locale": params.get("locale"),
            "on_behalf_of": params.get("on_behalf_of"),
            "return_url": params.get("return_url") or config["default_return_url"],
            "url": f"{self.url}/p/session/{session_id}",
        }
        self.portal_sessions[session_id] = session
        return copy.deepcopy(session)

    # --- Webhook endpoints -------------------------------------------------------------------

    def _endpoint(self, endpoint_id: str) -> dict[str, Any]:
        endpoint = self.webhook_endpoints.get(endpoint_id)
        if endpoint is None:
            raise _missing("webhook_endpoint", endpoint_id)
        return endpoint

    @staticmethod
    def _endpoint_answer(
        endpoint: Mapping[str, Any], *, with_secret: bool = False
    ) -> dict[str, Any]:
        answer = copy.deepcopy(dict(endpoint))
        if not with_secret:
            answer.pop("secret", None)
        return answer

    @staticmethod
    def _endpoint_fields(params: Mapping[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if "url" in params:
            url = str(params["url"])
            if not re.match(r"^https?://[^/\s]+", url):
                raise StripeApiError(400, f"Invalid URL: {url}", param="url")
            fields["url"] = url
        if "enabled_events" in params:
            events = params["enabled_events"]
            events = [events] if isinstance(events, str) else list(events)
            if not events:
                raise _required("enabled_events")
            fields["enabled_events"] = [str(e) for e in events]
        if "description" in params:
            fields["description"] = params["description"] or None
        return fields

    def _endpoint_create(self, call: _Call) -> dict[str, Any]:
        params = call.params
        _check_params(params, WebhookEndpointCreateParams)
        endpoint_id = random_id("we_")
        endpoint = {
            "id": endpoint_id,
            "object": "webhook_endpoint",
            "api_version": params.get("api_version") or None,
            "application": None,
            "created": _now(),
            "description": None,
            "enabled_events": [],
            "livemode": False,
            "metadata": _merge_metadata({}, params.get("metadata")),
            "secret": random_id("whsec_", 32),
            "status": "enabled",
            "url": "",
            **self._endpoint_fields(params),
        }
        self.webhook_endpoints[endpoint_id] = endpoint
        return self._endpoint_answer(endpoint, with_secret=True)

    def _endpoint_retrieve(self, call: _Call) -> dict[str, Any]:
        return self._endpoint_answer(self._endpoint(call.ids[0]))

    def _endpoint_update(self, call: _Call) -> dict[str, Any]:
        _check_params(call.params, WebhookEndpointModifyParams)
        endpoint = self._endpoint(call.ids[0])
        endpoint.update(self._endpoint_fields(call.params))
        if "disabled" in call.params:
            disabled = _bool(call.params["disabled"], "disabled")
            endpoint["status"] = "disabled" if disabled else "enabled"
        if "metadata" in call.params:
            endpoint["metadata"] = _merge_metadata(endpoint["metadata"], call.params["metadata"])
        return self._endpoint_answer(endpoint)

    def _endpoint_delete(self, call: _Call) -> dict[str, Any]:
        endpoint = self._endpoint(call.ids[0])
        del self.webhook_endpoints[endpoint["id"]]
        return {"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True}

    def _endpoint_list(self, call: _Call) -> dict[str, Any]:
        endpoints = [self._endpoint_answer(e) for e in reversed(self.webhook_endpoints.values())]
        return _list_object("/v1/webhook_endpoints", endpoints, call.params)


def _bad_expand(status: int, data: bytes) -> str | None:
    """The field named by localstripe's 400 "Bad expand 'field'", if that is the answer."""
    if status != 400:
        return None
    try:
        message = json.loads(data)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return None
    match = re.match(r"^Bad expand '([^']+)'$", str(message))
    return match.group(1) if match else None


def _fill_expanded(node: Any, path: list[str]) -> None:
    """Give a field localstripe lacks the empty value Stripe would answer, along `path`."""
    if isinstance(node, list):
        for item in node:
            _fill_expanded(item, path)
        return
    if not isinstance(node, dict) or not path:
        return
    head, rest = path[0], path[1:]
    if not rest:
        node.setdefault(head, copy.deepcopy(EXPAND_DEFAULTS.get(head)))
    elif head in node:
        _fill_expanded(node[head], rest)


# --- pytest ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def stripe_server() -> Iterator[StripeServer]:
    with StripeServer() as server:
        yield server


@pytest.fixture
def stripe_api(stripe_server: StripeServer, monkeypatch: pytest.MonkeyPatch) -> StripeServer:
    stripe_server.clear()
    monkeypatch.setattr(stripe, "api_base", stripe_server.url)
    monkeypatch.setattr(stripe, "api_key", stripe_server.api_key)
    return stripe_server
