"""KumoMTA HTTP injection (`POST /api/inject/v1`).

One request carries a batch of messages from one envelope sender: the content is a template
that is nothing but a per-recipient substitution holding that recipient's complete rendered
message, so every message keeps its own Message-ID, headers and body. KumoMTA creates one
message per recipient and answers only after each accepted one is spooled; recipients it refused
come back in `failed_recipients` / `errors` ("<address>: <code> <text>").
"""

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import httpx

from sending.mime import Outgoing
from sending.transports.base import Outcome, SendResult, excerpt, smtp_reply_outcome

CONTENT_TEMPLATE = "{{ tg_message }}"
_ERROR = re.compile(r"^\s*(?P<address>[^:\s]+):\s*(?P<text>.*)$", re.DOTALL)
_CODE = re.compile(r"\b([245])(\d\d)\b")
# Statuses after which the same request cannot succeed: the content itself was refused.
_REFUSED = {400: "malformed request", 413: "request too large", 415: "wrong content type"}


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
        client: httpx.Client | None = None,
    ) -> None:
        self.endpoint = url.rstrip("/") + "/api/inject/v1"
        self.batch_size = max(1, batch_size)
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
        by_sender: dict[str, list[int]] = defaultdict(list)
        for index, (message, _mime) in enumerate(items):
            by_sender[message.sender].append(index)
        for sender, indexes in by_sender.items():
            for start in range(0, len(indexes), self.batch_size):
                batch = indexes[start : start + self.batch_size]
                answers = self._inject(sender, [items[i] for i in batch])
                for index, answer in zip(batch, answers, strict=True):
                    results[index] = answer
        return [result for result in results if result is not None]

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
            response = self._client.post(self.endpoint, json=body)
        except httpx.TimeoutException as error:
            # The node may have taken the batch before the answer was lost; the policy drops a
            # Message-ID it already has, so sending again is safe.
            return [
                SendResult(
                    Outcome.RETRY, f"KumoMTA did not answer in time ({error}).", ambiguous=True
                )
                for _ in items
            ]
        except httpx.HTTPError as error:
            return self._all(Outcome.RETRY, f"KumoMTA could not be reached: {error}", items)
        status = response.status_code
        text = excerpt(response.text)
        if status == 200:
            return self._per_recipient(response, items)
        if status in (401, 403):
            return self._all(
                Outcome.RETRY,
                f"KumoMTA refused our credentials ({status} {text}): check KUMO_INJECT_USERNAME "
                "and KUMO_INJECT_PASSWORD, and the node's http_server_validate_auth_basic.",
                items,
            )
        if status == 422 or status in _REFUSED:
            what = _REFUSED.get(status, "content refused")
            return self._all(Outcome.FAILED, f"KumoMTA refused the message ({what}): {text}", items)
        # 429, 500 (also an envelope sender it does not accept), 503 (load shedding, spool):
        # the node's condition, not the message's.
        return self._all(Outcome.RETRY, f"KumoMTA answered {status}: {text}", items)

    def _per_recipient(
        self, response: httpx.Response, items: list[tuple[Outgoing, bytes]]
    ) -> list[SendResult]:
        try:
            reply = response.json()
            failed = {str(a).lower() for a in reply.get("failed_recipients") or []}
            errors = [str(e) for e in reply.get("errors") or []]
        except (ValueError, AttributeError):
            return self._all(
                Outcome.RETRY, f"KumoMTA gave an unreadable answer: {excerpt(response.text)}", items
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
            code = _CODE.search(reason)
            outcome = smtp_reply_outcome(int(code.group(0))) if code else Outcome.RETRY
            if outcome is Outcome.SENT:
                outcome = Outcome.RETRY
            results.append(SendResult(outcome, f"KumoMTA refused it: {excerpt(reason)}"))
        return results

    @staticmethod
    def _all(
        outcome: Outcome, reason: str, items: list[tuple[Outgoing, bytes]]
    ) -> list[SendResult]:
        return [SendResult(outcome, reason) for _ in items]

    def close(self) -> None:
        if self._owns_client:
            self._client.close()
