"""The one interface every transport implements (no Django)."""

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sending.mime import Outgoing


class Outcome(enum.StrEnum):
    SENT = "sent"  # the next hop accepted it (or had accepted it already)
    RETRY = "retry"  # a temporary condition: try again later
    FAILED = "failed"  # refused for good: never retried


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    reason: str  # what the server said, in words: stored on the message
    mta_id: str = ""  # the next hop's id for the message, when it tells us
    # No answer came after the message was (perhaps) sent: the next hop may have it.
    ambiguous: bool = False


class Transport(Protocol):
    name: str
    # Whether the message carries the X-Tenant/X-Campaign/X-Kind headers (our MTA only).
    routing_headers: bool
    # Whether re-sending a message whose hand-over was interrupted is safe: the next hop
    # drops a Message-ID it has already accepted (our MTA's policy does).
    drops_duplicates: bool

    def send(self, message: Outgoing, mime: bytes) -> SendResult: ...

    def send_many(self, items: Sequence[tuple[Outgoing, bytes]]) -> list[SendResult]:
        """One result per item, in order; a batch reuses one connection."""
        ...

    def close(self) -> None: ...


def smtp_reply_outcome(code: int) -> Outcome:
    """2xx accepted, 4xx try again, anything else refused."""
    if 200 <= code < 300:
        return Outcome.SENT
    if 400 <= code < 500:
        return Outcome.RETRY
    return Outcome.FAILED


def excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
