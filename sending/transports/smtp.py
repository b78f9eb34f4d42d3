"""SMTP submission: to our MTA, to a relay an operator prefers (Postfix, SES, Mailgun), or to a
customer's own server with their credentials. One session serves a whole batch."""

import contextlib
import re
import smtplib
from collections.abc import Sequence

from sending.connection_test import ConnectionProblem, ServerSpec, smtp_connect
from sending.mime import Outgoing
from sending.transports.base import Outcome, SendResult, excerpt, smtp_reply_outcome

# KumoMTA answers a queued message with "250 OK ids=<spool id>".
_SPOOL_ID = re.compile(r"\bids=([0-9a-fA-F]{32})\b")
# Conditions a later attempt can get past; the rest (an internal address) need the settings
# fixed. A refused login is retried too: the customer may fix the password meanwhile.
_RETRYABLE = frozenset(
    {
        "refused",
        "timeout",
        "tls_error",
        "host_not_found",
        "auth_failed",
        "protocol_error",
        "smtp_auth_disabled",
        "oauth_revoked",
        "oauth_unavailable",
    }
)


class SmtpTransport:
    # Messages per batch: each is booked once its batch is done, and a batch must finish well
    # within the hand-over lease even when every message waits for its timeout.
    batch_size = 20

    def __init__(
        self,
        *,
        name: str,
        spec: ServerSpec,
        timeout: float,
        ca_file: str = "",
        allow_private: bool = False,
        routing_headers: bool = False,
        drops_duplicates: bool = False,
    ) -> None:
        self.name = name
        self.spec = spec
        self.timeout = timeout
        self.ca_file = ca_file
        self.allow_private = allow_private
        self.routing_headers = routing_headers
        self.drops_duplicates = drops_duplicates
        self._client: smtplib.SMTP | None = None

    @property
    def _where(self) -> str:
        return f"{self.spec.host}:{self.spec.port}"

    def _session(self) -> smtplib.SMTP:
        if self._client is None:
            self._client = smtp_connect(
                self.spec,
                timeout=self.timeout,
                ca_file=self.ca_file,
                allow_private=self.allow_private,
            )
        return self._client

    def send(self, message: Outgoing, mime: bytes) -> SendResult:
        return self.send_many([(message, mime)])[0]

    def send_many(self, items: Sequence[tuple[Outgoing, bytes]]) -> list[SendResult]:
        results: list[SendResult] = []
        for index, (message, mime) in enumerate(items):
            try:
                client = self._session()
            except ConnectionProblem as problem:
                # The server cannot be reached: the rest of the batch fares no better.
                outcome = Outcome.RETRY if problem.result.reason in _RETRYABLE else Outcome.FAILED
                failed = SendResult(outcome, problem.result.message)
                return results + [failed] * (len(items) - index)
            except Exception as error:  # e.g. a host name that cannot be encoded
                failed = SendResult(Outcome.RETRY, f"Cannot connect to {self._where}: {error}")
                return results + [failed] * (len(items) - index)
            results.append(self._transaction(client, message, mime))
        return results

    def _transaction(self, client: smtplib.SMTP, message: Outgoing, mime: bytes) -> SendResult:
        """MAIL, RCPT, DATA on an open session; any failure leaves the session reset or closed."""
        try:
            code, reply = client.mail(message.sender)
            if code != 250:
                return self._refused(client, "the sender", code, reply)
            code, reply = client.rcpt(message.recipient)
            if code not in (250, 251):
                return self._refused(client, "the recipient", code, reply)
        except Exception as error:  # also what smtplib raises for an address it cannot encode
            self._drop()
            return SendResult(Outcome.RETRY, f"{self._where} failed before the message: {error}")
        try:
            code, reply = client.data(mime)
        except smtplib.SMTPDataError as error:
            # The DATA command itself was refused: no content went out.
            return self._refused(client, "the message", error.smtp_code, error.smtp_error)
        except Exception as error:
            self._drop()
            return self._interrupted(error)
        text = reply.decode("utf-8", "replace")
        outcome = smtp_reply_outcome(code)
        if outcome is Outcome.SENT:
            found = _SPOOL_ID.search(text)
            return SendResult(
                Outcome.SENT, excerpt(f"{code} {text}"), found.group(1) if found else ""
            )
        return SendResult(
            outcome, f"{self._where} refused the message: {excerpt(f'{code} {text}')}"
        )

    def _interrupted(self, error: Exception) -> SendResult:
        """The message was (perhaps completely) sent but no answer came: the server may have
        accepted it. Only a next hop that drops a Message-ID it already has makes a retry safe."""
        if self.drops_duplicates:
            return SendResult(
                Outcome.RETRY,
                f"{self._where} did not confirm the message ({error}); it is sent again, and the "
                "MTA drops it if the first copy arrived.",
                ambiguous=True,
            )
        return SendResult(
            Outcome.FAILED,
            f"{self._where} did not confirm the message ({error}). It may have been delivered, "
            "so it is not sent again (the recipient must not get it twice).",
        )

    def _refused(
        self, client: smtplib.SMTP, what: str, code: int, reply: bytes | str
    ) -> SendResult:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            client.rset()
        words = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
        text = excerpt(f"{code} {words}")
        return SendResult(smtp_reply_outcome(code), f"{self._where} refused {what}: {text}")

    def _drop(self) -> None:
        if self._client is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._client.close()
        self._client = None

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._client.quit()
        self._drop()
