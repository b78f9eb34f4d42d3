"""KumoMTA HTTP injection (`POST /api/inject/v1`).

One request carries a batch of messages from one envelope sender: the content is a template
that is nothing but a per-recipient substitution holding that recipient's complete rendered
message, so every message keeps its own Message-ID, headers and body. KumoMTA creates one
message per recipient and answers only after each accepted one is spooled; recipients it refused
come back in `failed_recipients` / `errors` ("<address>: <code> <text>").
"""

import re
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from sending.mime import Outgoing
from sending.transports.base import Outcome, SendResult, excerpt, smtp_reply_outcome

CONTENT_TEMPLATE = "{{ tg_message }}"
_ERROR = re.compile(r"^\s*(?P<address>[^:\s]+):\s*(?P<text>.*)$", re.DOTALL)
# The reply code opens the text after the address ("550 5.1.1 ..."); a number further on (a
# Lua line number in an error) is not one.
_CODE = re.compile(r"^\s*([245]\d\d)\b")
# KumoMTA refuses request bodies over 2 MiB by default (request_body_limit).
MAX_REQUEST_BYTES = 1536 * 1024
REQUEST_OVERHEAD = 512
TOO_LARGE = "Larger than KumoMTA accepts in one request (request_body_limit)."
# Statuses after which the same request cannot succeed: the content itself was refused.
_REFUSED = {400: "malformed request", 415: "wrong content type", 422: "content refused"}


def _encoded_size(mime: bytes) -> int:
    """About what a message weighs inside the JSON body (line breaks are escaped)."""
    return len(mime) + 2 * mime.count(b"\n") + 96


class KumoHttpTransport:
    name = "kumo_http"
    routing_headers = True
    drops_duplicates = True  # our policy drops a Message-ID it has already accepted

    def __init__(
        self,
        *,
        url: str,
        username: str = "",
        password: str = "",
        timeout: float = 30.0,
        batch_size: int = 200,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        client: httpx.Client | None = None,
    ) -> None:
        self.endpoint = url.rstrip("/") + "/api/inject/v1"
        self.batch_size = max(1, batch_size)
        self.max_request_bytes = max_request_bytes
        # A client passed in is shared (kept open across batches); one made here is ours.
        self._owns_client = client is None
        self._client = client or self.client_new(username, password, timeout)

    @staticmethod
    def client_new(username: str, password: str, timeout: float) -> httpx.Client:
        auth = httpx.BasicAuth(username, password) if username else None
        return httpx.Client(timeout=timeout, auth=auth)

    def send(self, message: Outgoing, mime: bytes) -> SendResult:
        return self.send_many([(message, mime)])[0]

    def send_many(self, items: Sequence[tuple[Outgoing, bytes]]) -> list[SendResult]:
        results: list[SendResult | None] = [None] * len(items)
        for sender, request in self._requests(items):
            answers = self._inject_splitting(sender, [items[i] for i in request])
            for index, answer in zip(request, answers, strict=True):
                results[index] = answer
        return [result for result in results if result is not None]

    def _requests(self, items: Sequence[tuple[Outgoing, bytes]]) -> list[tuple[str, list[int]]]:
        """Item indexes per request: one envelope sender each, at most `batch_size` messages
        and `max_request_bytes`, and no address twice (refusals name only the address)."""
        requests: list[tuple[str, list[int]]] = []
        open_requests: dict[str, tuple[list[int], set[str], list[int]]] = {}
        for index, (message, mime) in enumerate(items):
            size = _encoded_size(mime)
            current = open_requests.get(message.sender)
            address = message.recipient.lower()
            if (
                current is None
                or len(current[0]) >= self.batch_size
                or address in current[1]
                or current[2][0] + size > self.max_request_bytes
            ):
                current = ([], set(), [REQUEST_OVERHEAD])
                open_requests[message.sender] = current
                requests.append((message.sender, current[0]))
            current[0].append(index)
            current[1].add(address)
            current[2][0] += size
        return requests

    def _inject_splitting(
        self, sender: str, items: list[tuple[Outgoing, bytes]]
    ) -> list[SendResult]:
        """One request; if the node finds it too large (413), the halves go separately."""
        if (
            len(items) == 1
            and REQUEST_OVERHEAD + _encoded_size(items[0][1]) > self.max_request_bytes
        ):
            return [SendResult(Outcome.FAILED, TOO_LARGE)]
        results = self._inject(sender, items)
        if results and results[0].reason == TOO_LARGE and len(items) > 1:
            half = len(items) // 2
            return self._inject_splitting(sender, items[:half]) + self._inject_splitting(
                sender, items[half:]
            )
        return results

    def _inject(self, sender: str, items: list[tuple[Outgoing, bytes]]) -> list[SendResult]:
        body: dict[str, Any] = {
            "envelope_sender": sender,
            "content": CONTENT_TEMPLATE,
            "recipients": [
                {
                    "email": message.recipient,
                    "substitutions": {"tg_message": mime.decode("ascii", "replace")},
                }
                for message, mime in items
            ],
            # The policy adds its own X-KumoRef (with the tenant), on both injection paths.
            "trace_headers": {"supplemental_header": False},
        }
        try:
            response = self._client.post(
                self.endpoint,
                content=orjson.dumps(body),
                headers={"Content-Type": "application/json"},
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            # Nothing was sent: a clear failure.
            return self._all(Outcome.RETRY, f"KumoMTA could not be reached: {error}", items)
        except httpx.HTTPError as error:
            # Sent, then no (whole) answer: the node may have taken the batch. Sending again
            # is safe: the policy drops a Message-ID it already has.
            return self._all(
                Outcome.RETRY,
                f"KumoMTA did not answer ({type(error).__name__}: {error}).",
                items,
                ambiguous=True,
            )
        status = response.status_code
        text = excerpt(response.text)
        if status == 200:
            return self._per_recipient(response, items)
        if status in (401, 403):
            return self._all(
                Outcome.RETRY,
                f"KumoMTA refused our credentials ({status} {text}): check KUMO_INJECT_USERNAME "
                "and KUMO_INJECT_PASSWORD, and the node's TRUSTGATE_INJECT_* settings.",
                items,
            )
        if status == 413:
            return self._all(Outcome.FAILED, TOO_LARGE, items)
        if status in _REFUSED:
            return self._all(
                Outcome.FAILED, f"KumoMTA refused the message ({_REFUSED[status]}): {text}", items
            )
        if status in (429, 503):
            # The node turned the request away before looking at it (load shedding, spool).
            return self._all(Outcome.RETRY, f"KumoMTA answered {status}: {text}", items)
        # 500, or a proxy's 502/504: the node may have taken some or all of the batch.
        return self._all(Outcome.RETRY, f"KumoMTA answered {status}: {text}", items, ambiguous=True)

    def _per_recipient(
        self, response: httpx.Response, items: list[tuple[Outgoing, bytes]]
    ) -> list[SendResult]:
        try:
            reply = response.json()
            failed = {str(a).lower() for a in reply.get("failed_recipients") or []}
            errors = [str(e) for e in reply.get("errors") or []]
        except (ValueError, AttributeError):
            return self._all(
                Outcome.RETRY,
                f"KumoMTA gave an unreadable answer: {excerpt(response.text)}",
                items,
                ambiguous=True,
            )
        reasons: dict[str, str] = {}
        for error in errors:
            found = _ERROR.match(error)
            if found:
                reasons.setdefault(found["address"].lower(), found["text"])
        results = []
        for message, _mime in items:
            address = message.recipient.lower()
            if address not in failed:
                results.append(SendResult(Outcome.SENT, "Accepted by KumoMTA."))
                continue
            reason = reasons.get(address, "refused without a reason")
            code = _CODE.match(reason)
            outcome = smtp_reply_outcome(int(code.group(1))) if code else Outcome.RETRY
            if outcome is Outcome.SENT:
                outcome = Outcome.RETRY
            results.append(SendResult(outcome, f"KumoMTA refused it: {excerpt(reason)}"))
        return results

    @staticmethod
    def _all(
        outcome: Outcome,
        reason: str,
        items: list[tuple[Outgoing, bytes]],
        *,
        ambiguous: bool = False,
    ) -> list[SendResult]:
        return [SendResult(outcome, reason, ambiguous=ambiguous) for _ in items]

    def close(self) -> None:
        if self._owns_client:
            self._client.close()
