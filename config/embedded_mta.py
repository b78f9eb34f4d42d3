"""A stand-in for KumoMTA's HTTP injection API: the embedded profile's MTA, and the tests'.

It implements the documented `POST /api/inject/v1` request and reply for the form the platform
uses (content: an RFC 5322 template, `{{ name }}` replaced by each recipient's substitutions;
reply `{success_count, fail_count, failed_recipients, errors}`, 200 even when recipients fail,
422 for unknown fields or bad content, 401 for wrong credentials) and does what our policy does
at reception: drops a copy of a Message-ID it noted as accepted (checked first, noted last, in
Redis when given one; a re-send marked X-Resend is refused when the notes cannot be read),
refuses mail without X-Tenant and removes the routing headers. Each accepted message goes to
`deliver(sender, recipient, data)`; its Reception and then Delivery (or Bounce) log records go
to `report(records)`, as the node's log hook would post them. It can be told to answer with a
status, refuse addresses, fail a queue insert after noting, lose its notes, or stall.
"""

import base64
import contextlib
import hmac
import logging
import mailbox
import queue
import re
import smtplib
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from config.mailstore import Mailstore, embedded_mailstore, platform_mailbox_exists

logger = logging.getLogger(__name__)

REQUEST_FIELDS = {
    "envelope_sender",
    "recipients",
    "content",
    "substitutions",
    "template_dialect",
    "trace_headers",
    "deferred_spool",
    "deferred_generation",
}
RECIPIENT_FIELDS = {"email", "name", "substitutions", "metadata"}
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_REMOVED = frozenset({"x-tenant", "x-campaign", "x-kind", "x-resend", "x-kumoref"})
_READ = _REMOVED | {"message-id"}

Deliver = Callable[[str, str, bytes], None]
Report = Callable[[list[dict[str, Any]]], None]


RESEND_UNCONFIRMED = (
    "4.3.0 cannot confirm whether this re-sent message was accepted before; try again later"
)


class DeliveryRefused(Exception):
    """Raised by `deliver` when the receiving server refused the message."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}" if code else text)
        self.code = code
        self.text = text


class InjectStandIn:
    def __init__(
        self,
        *,
        deliver: Deliver,
        report: Report | None = None,
        username: str = "",
        password: str = "",
        port: int = 0,
        notes: Any = None,
        notes_prefix: str = "kumo:accepted:",
    ) -> None:
        self.deliver = deliver
        self.report = report
        self.username = username
        self.password = password
        self.accepted: dict[str, str] = {}  # Message-ID -> spool id of the copy it kept
        self.requests = 0
        # Test controls: answer every request with this status; refuse these recipients with
        # "<code> <text>"; hold each reply until this event is set (after the messages went).
        self.answer_status: int | None = None
        self.refuse: dict[str, str] = {}
        self.fail_after_noting: set[str] = set()  # recipients whose queue insert fails
        self.max_body: int | None = None  # request_body_limit
        self.notes_down = False  # the Redis with the notes cannot be reached
        self.stall: threading.Event | None = None
        self.notes = notes
        self.notes_prefix = notes_prefix
        self._notes: set[str] = set()
        self._lock = threading.Lock()
        self._reports: queue.Queue[list[dict[str, Any]] | None] = queue.Queue()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        for target in (self._server.serve_forever, self._report_loop):
            thread = threading.Thread(target=target, daemon=True, name="inject-stand-in")
            thread.start()
            self._threads.append(thread)
        return self.url

    def stop(self) -> None:
        if self.stall is not None:
            self.stall.set()
        self._server.shutdown()
        self._server.server_close()
        self._reports.put(None)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every log record produced so far has been reported."""
        deadline = time.monotonic() + timeout
        while self._reports.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    # --- the HTTP side -----------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once, no ACK delay

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, reply = stand_in._answer(self.path, self.headers.get("Authorization"), body)
                data = reply if isinstance(reply, bytes) else orjson.dumps(reply)
                self.send_response(status)
                self.send_header(
                    "Content-Type", "application/json" if status == 200 else "text/plain"
                )
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _answer(self, path: str, authorization: str | None, body: bytes) -> tuple[int, Any]:
        self.requests += 1
        if path != "/api/inject/v1":
            return 404, b"Not Found"
        if self.password and not self._authorized(authorization):
            return 401, b"HttpBasicAuth Authentication Failed"
        if self.answer_status is not None:
            return self.answer_status, f"Error: status {self.answer_status}".encode()
        if self.max_body is not None and len(body) > self.max_body:
            return 413, b"Error: length limit exceeded"
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return 400, b"Error: Failed to parse the request body as JSON"
        problem = _request_problem(request)
        if problem:
            return 422, f"Error: {problem}".encode()
        reply = self._inject(request)
        if self.stall is not None:
            self.stall.wait()
        return 200, reply

    def _authorized(self, authorization: str | None) -> bool:
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, self.username) and hmac.compare_digest(
            password, self.password
        )

    # --- what a node does with each recipient -------------------------------------------------

    def _inject(self, request: dict[str, Any]) -> dict[str, Any]:
        sender = request["envelope_sender"]
        shared = request.get("substitutions") or {}
        succeeded, failed, errors = 0, [], []
        for recipient in request["recipients"]:
            address = recipient["email"]
            variables = {**shared, **(recipient.get("substitutions") or {})}
            text = _render(request["content"], variables)
            try:
                self._receive(sender, address, text.encode("utf-8"))
            except DeliveryRefused as refusal:
                failed.append(address)
                errors.append(f"{address}: {refusal}")
                continue
            succeeded += 1
        return {
            "success_count": succeeded,
            "fail_count": len(failed),
            "failed_recipients": failed,
            "errors": errors,
        }

    def _receive(self, sender: str, recipient: str, data: bytes) -> None:
        data, found = _take_headers(data)
        message_id = found.get("message-id", "").strip("<>")
        if not message_id:
            raise DeliveryRefused(550, "5.6.0 the message has no Message-ID")
        resend = found.get("x-resend") == "1"
        # As the policy: a copy of a message already accepted is dropped before anything else.
        if self._noted(message_id, resend):
            return
        tenant = found.get("x-tenant", "")
        if not tenant:
            raise DeliveryRefused(550, "5.7.1 no X-Tenant header: only the platform may inject")
        if recipient in self.refuse:
            code, _, text = self.refuse[recipient].partition(" ")
            raise DeliveryRefused(int(code), text)
        if not self._note(message_id, resend):
            return  # a concurrent copy was noted first
        spool_id = uuid.uuid4().hex
        self.accepted[message_id] = spool_id
        meta = {
            "tenant": tenant,
            "campaign": found.get("x-campaign") or None,
            "kind": found.get("x-kind") or None,
            "message_id": message_id,
        }
        domain = recipient.rpartition("@")[2]
        queue_name = (
            f"{meta['campaign']}:{tenant}@{domain}" if meta["campaign"] else f"{tenant}@{domain}"
        )
        base = {
            "id": spool_id,
            "sender": sender,
            "recipient": recipient,
            "queue": queue_name,
            "meta": {k: v for k, v in meta.items() if v},
            "size": len(data),
            "created": int(time.time()),
        }
        self._record(base, "Reception", 250, "", num_attempts=0, reception_protocol="HTTP")
        if recipient in self.fail_after_noting:
            # kumod logs the Reception, then the queue insert fails: a Bounce, and the
            # recipient is reported as failed (with no reply code).
            text = "KumoMTA internal: QueueManager::insert failed during reception: no queue"
            self._record(base, "Bounce", 500, text, num_attempts=0)
            raise DeliveryRefused(0, text)
        try:
            self.deliver(sender, recipient, data)
        except DeliveryRefused as refusal:
            kind = "TransientFailure" if 400 <= refusal.code < 500 else "Bounce"
            self._record(base, kind, refusal.code, refusal.text, num_attempts=1)
        else:
            self._record(base, "Delivery", 250, "OK", num_attempts=1)

    def _noted(self, message_id: str, resend: bool) -> bool:
        """Whether the Message-ID was accepted before (the policy's note, in Redis when given)."""
        if self.notes_down:
            if resend:
                raise DeliveryRefused(451, RESEND_UNCONFIRMED)
            return False
        if self.notes is None:
            with self._lock:
                return message_id in self._notes
        return bool(self.notes.exists(self.notes_prefix + message_id))

    def _note(self, message_id: str, resend: bool) -> bool:
        """Note the Message-ID; False when it was noted already."""
        if self.notes_down:
            if resend:
                raise DeliveryRefused(451, RESEND_UNCONFIRMED)
            return True
        if self.notes is None:
            with self._lock:
                if message_id in self._notes:
                    return False
                self._notes.add(message_id)
                return True
        return bool(self.notes.set(self.notes_prefix + message_id, 1, nx=True, ex=604800))

    def _record(self, base: dict[str, Any], kind: str, code: int, text: str, **extra: Any) -> None:
        if self.report is None:
            return
        record = {
            **base,
            **extra,
            "type": kind,
            "timestamp": int(time.time()),
            "response": {"code": code, "enhanced_code": None, "content": text, "command": None},
        }
        self._reports.put([record])

    def _report_loop(self) -> None:
        while True:
            batch = self._reports.get()
            if batch is None:
                self._reports.task_done()
                return
            try:
                if self.report is not None:
                    self.report(batch)
            except Exception:  # a real node would retry; the stand-in logs and goes on
                logger.exception("the stand-in MTA could not report %d records", len(batch))
            finally:
                self._reports.task_done()


def _render(template: str, variables: dict[str, Any]) -> str:
    return _PLACEHOLDER.sub(lambda m: str(variables.get(m.group(1), "")), template)


def _request_problem(request: object) -> str:
    if not isinstance(request, dict):
        return "the request must be a JSON object"
    unknown = set(request) - REQUEST_FIELDS
    if unknown:
        return f"unknown field `{sorted(unknown)[0]}`"
    for name in ("envelope_sender", "recipients", "content"):
        if name not in request:
            return f"missing field `{name}`"
    if not isinstance(request["content"], str):
        return "this stand-in implements string content only"
    recipients = request["recipients"]
    if not isinstance(recipients, list) or not recipients:
        return "recipients must be a non-empty list"
    for recipient in recipients:
        if not isinstance(recipient, dict) or not isinstance(recipient.get("email"), str):
            return "each recipient needs an email"
        if set(recipient) - RECIPIENT_FIELDS:
            return f"unknown recipient field `{sorted(set(recipient) - RECIPIENT_FIELDS)[0]}`"
    return ""


def _take_headers(data: bytes) -> tuple[bytes, dict[str, str]]:
    """The message without the routing headers (as the policy removes them), and the values of
    the headers the policy reads, by lower-case name."""
    head, separator, body = data.partition(b"\r\n\r\n")
    found: dict[str, str] = {}
    kept = []
    for line in head.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        lower = name.strip().lower().decode("ascii", "replace") if colon else ""
        if lower in _READ and lower not in found:
            found[lower] = value.strip().decode("utf-8", "replace")
        if lower not in _REMOVED:
            kept.append(line)
    return b"\r\n".join(kept) + separator + body, found


# --- the embedded profile's node ----------------------------------------------------------------

_embedded: InjectStandIn | None = None
_embedded_lock = threading.Lock()


def smtp_hand_over(host: str, port: int, sender: str, recipient: str, data: bytes) -> None:
    """Deliver one message over SMTP, as a node does to the recipient's MX; DeliveryRefused
    with the server's reply when it refuses."""
    try:
        with smtplib.SMTP(host, port, timeout=30, local_hostname="localhost") as client:
            client.sendmail(sender, [recipient], data)
    except smtplib.SMTPRecipientsRefused as error:
        code, text = next(iter(error.recipients.values()))
        raise DeliveryRefused(code, _text(text)) from error
    except smtplib.SMTPResponseException as error:
        raise DeliveryRefused(error.smtp_code, _text(error.smtp_error)) from error
    except (OSError, smtplib.SMTPException) as error:
        raise DeliveryRefused(
            451, f"4.4.1 {host}:{port} did not take the message: {error}"
        ) from error


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def embedded_deliver(outbox_dir: Path, mailstore: Callable[[], Mailstore | None]) -> Deliver:
    """The embedded node's delivery: a platform mailbox's mail goes to the inbound store's MX
    (when one runs), everything else into the Maildir `outbox_dir`."""
    outbox = mailbox.Maildir(outbox_dir, create=True)

    def deliver(sender: str, recipient: str, data: bytes) -> None:
        from django.db import connections

        try:
            store = mailstore() if platform_mailbox_exists(recipient) else None
        finally:
            # This runs in the stand-in's request thread: nothing else closes what it opened.
            connections.close_all()
        if store is None:
            outbox.add(data)
            return
        smtp_hand_over(store.receiver.host, store.receiver.port, sender, recipient, data)

    return deliver


def embedded_mta_url() -> str:
    """Start (once) the embedded profile's MTA: messages to platform mailboxes go to their
    inbound store (config/mailstore.py), the rest land in var/outbox (a Maildir); their log
    records are posted to the platform's own hook, as a real node's would be."""
    global _embedded
    with _embedded_lock:
        if _embedded is None:
            from django.conf import settings

            from config.http import post_json

            deliver = embedded_deliver(Path(settings.VAR_DIR) / "outbox", embedded_mailstore)

            def report(records: list[dict[str, Any]]) -> None:
                with contextlib.suppress(OSError):
                    post_json(
                        settings.KUMO_HOOK_URL,
                        orjson.dumps(records),
                        headers={"Authorization": f"Bearer {settings.KUMO_WEBHOOK_TOKEN}"},
                    )

            _embedded = InjectStandIn(deliver=deliver, report=report)
            _embedded.start()
        return _embedded.url


def main() -> None:
    """`python -m config.embedded_mta PORT`: a stand-in node that accepts and discards (for the
    benchmarks, which measure the platform's side in a process of its own)."""
    import sys

    stand_in = InjectStandIn(deliver=lambda sender, recipient, data: None, port=int(sys.argv[1]))
    stand_in.start()
    print(stand_in.url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
