"""Outbound messages as RFC 5322 bytes (pure: standard library only)."""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

# The policy on our MTA reads these and removes them before the message leaves (kumomta/).
TENANT_HEADER = "X-Tenant"
CAMPAIGN_HEADER = "X-Campaign"
KIND_HEADER = "X-Kind"
ROUTING_HEADERS = (TENANT_HEADER, CAMPAIGN_HEADER, KIND_HEADER)

# Headers the builder writes itself; extra headers may not replace them.
_OWN_HEADERS = frozenset(
    name.lower()
    for name in (
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        "X-KumoRef",
        *ROUTING_HEADERS,
    )
)
_HEADER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,76}$")
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_ID_TEXT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class MessageContentError(ValueError):
    """The message cannot be written as a valid email (a bad header, address or id)."""


@dataclass(frozen=True)
class Outgoing:
    """Everything a transport needs about one message, without the database."""

    message_id: str  # "<token>@<domain>", without angle brackets
    sender: str
    recipient: str
    subject: str
    text_body: str
    tenant: str  # the sending domain's public id, read by our MTA's policy
    kind: str  # warmup | campaign
    campaign: str = ""
    sender_name: str = ""
    recipient_name: str = ""
    html_body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    key: int = 0  # the Message row's id, so results can be matched back


def message_id_header(message_id: str) -> str:
    return f"<{message_id}>"


def message_id_bare(value: str) -> str:
    """A Message-ID header's value without angle brackets or surrounding space."""
    return value.strip().strip("<>").strip()


def _address(name: str, address: str) -> Address:
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c in address for c in "\r\n<> ,"):
        raise MessageContentError(f"{address!r} is not a single email address.")
    try:
        return Address(display_name=name, username=local, domain=domain)
    except (ValueError, IndexError) as error:
        raise MessageContentError(f"{address!r} is not a valid address: {error}") from error


def outgoing_check(message: Outgoing) -> None:
    """Raise MessageContentError for what mime_build would refuse, without building a body."""
    mime_build(
        Outgoing(
            message_id=message.message_id,
            sender=message.sender,
            recipient=message.recipient,
            subject=message.subject,
            text_body="",
            tenant=message.tenant,
            kind=message.kind,
            campaign=message.campaign,
            sender_name=message.sender_name,
            recipient_name=message.recipient_name,
            headers=message.headers,
        ),
        date=_EPOCH,
        routing_headers=True,
    )


def mime_build(message: Outgoing, *, date: datetime, routing_headers: bool) -> bytes:
    """The message as bytes. With `routing_headers`, the X-Tenant/X-Campaign/X-Kind headers our
    MTA's policy reads (and removes) are added; mail for anyone else's server never has them."""
    email = EmailMessage(policy=SMTP)
    try:
        email["From"] = _address(message.sender_name, message.sender)
        email["To"] = _address(message.recipient_name, message.recipient)
        email["Subject"] = message.subject
        email["Date"] = format_datetime(date)
        email["Message-ID"] = message_id_header(message.message_id)
        for name, value in message.headers.items():
            if not _HEADER_NAME.match(name) or name.lower() in _OWN_HEADERS:
                raise MessageContentError(f"The header {name!r} cannot be set on a message.")
            email[name] = value
    except ValueError as error:  # a CR or LF in a value: a header injection attempt
        raise MessageContentError(str(error)) from error
    if routing_headers:
        for name, value in (
            (TENANT_HEADER, message.tenant),
            (CAMPAIGN_HEADER, message.campaign),
            (KIND_HEADER, message.kind),
        ):
            if not value:
                continue
            if not _ID_TEXT.match(value):
                raise MessageContentError(f"{name} {value!r} is not a valid id.")
            email[name] = value
    email.set_content(message.text_body or "")
    if message.html_body:
        email.add_alternative(message.html_body, subtype="html")
    return email.as_bytes()
