"""Outbound messages as RFC 5322 bytes (pure: standard library only).

The writer assembles the few shapes the platform sends (text, or text and HTML alternatives)
from the standard library's encoders (RFC 2047 headers, quoted-printable bodies): it is about a
hundred times faster than building an `EmailMessage` on this path, which renders every message
the platform sends. Tests parse its output back with the `email` package.
"""

import binascii
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr
from functools import lru_cache

# The policy on our MTA reads these and removes them before the message leaves (kumomta/).
TENANT_HEADER = "X-Tenant"
CAMPAIGN_HEADER = "X-Campaign"
KIND_HEADER = "X-Kind"
# Set on a re-send of a message an earlier attempt may have delivered to the MTA: the policy
# then refuses (for a later retry) rather than accept it when it cannot check its notes.
RESEND_HEADER = "X-Resend"
ROUTING_HEADERS = (TENANT_HEADER, CAMPAIGN_HEADER, KIND_HEADER, RESEND_HEADER)

# Headers the writer sets itself; extra headers may not replace them.
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
        "Return-Path",
        "Received",
        "DKIM-Signature",
        *ROUTING_HEADERS,
    )
)
_HEADER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,76}$")
_ID_TEXT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_MSG_ID = re.compile(r"^[A-Za-z0-9._%+-]{1,128}@[A-Za-z0-9.-]{1,253}$")
_BREAKS = re.compile(r"[\r\n\x00]")
MAX_HEADER_CHARS = 900  # a header line may be 998 octets; room for the name
MAX_LINE_OCTETS = 998
CRLF = b"\r\n"


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
    resend: bool = False  # an earlier attempt may have reached our MTA


def message_id_header(message_id: str) -> str:
    return f"<{message_id}>"


def message_id_bare(value: str) -> str:
    """A Message-ID header's value without angle brackets or surrounding space."""
    return value.strip().strip("<>").strip()


@lru_cache(maxsize=65536)  # pure; a sender's address is checked for every message it sends
def address_check(address: str) -> str:
    """The address in the form the envelope uses (an IDN domain as punycode); raises
    MessageContentError for anything that is not one plain address."""
    local, at, domain = address.rpartition("@")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        domain = ""
    if not at or not _LOCAL_PART.match(local) or ".." in local or not _DOMAIN.match(domain):
        raise MessageContentError(f"{address!r} is not a single email address.")
    return f"{local}@{domain}"


def _text(name: str, value: str) -> str:
    if _BREAKS.search(value):
        raise MessageContentError(f"The {name} may not contain line breaks.")
    if len(value) > MAX_HEADER_CHARS:
        raise MessageContentError(f"The {name} is longer than {MAX_HEADER_CHARS} characters.")
    return value


def outgoing_check(message: Outgoing) -> None:
    """Raise MessageContentError for anything `mime_build` would refuse."""
    address_check(message.sender)
    address_check(message.recipient)
    if not _MSG_ID.match(message.message_id):
        raise MessageContentError(f"{message.message_id!r} is not a Message-ID.")
    _text("subject", message.subject)
    _text("sender name", message.sender_name)
    _text("recipient name", message.recipient_name)
    for name, value in message.headers.items():
        if not _HEADER_NAME.match(name) or name.lower() in _OWN_HEADERS:
            raise MessageContentError(f"The header {name!r} cannot be set on a message.")
        _text(f"header {name}", value)
    for name, value in ((TENANT_HEADER, message.tenant), (KIND_HEADER, message.kind)):
        if not _ID_TEXT.match(value):
            raise MessageContentError(f"{name} {value!r} is not a valid id.")
    if message.campaign and not _ID_TEXT.match(message.campaign):
        raise MessageContentError(f"{CAMPAIGN_HEADER} {message.campaign!r} is not a valid id.")


def _header(name: str, value: str) -> bytes:
    if value.isascii() and len(name) + len(value) < 78:
        return f"{name}: {value}".encode("ascii")
    # RFC 2047 words for non-ASCII text, folded to short lines.
    charset = "us-ascii" if value.isascii() else "utf-8"
    encoded = Header(value, charset, header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}".encode("ascii")


def _mailbox(name: str, address: str) -> str:
    return formataddr((name, address_check(address)), charset="utf-8")


def _body(content: str, subtype: str) -> list[bytes]:
    """Headers and body of one text part: 7bit when it can be, else quoted-printable."""
    data = content.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    if data.isascii() and all(len(line) <= MAX_LINE_OCTETS for line in data.split(b"\n")):
        encoding, payload = b"7bit", data
    else:
        encoding, payload = b"quoted-printable", binascii.b2a_qp(data, istext=True)
    return [
        b"Content-Type: text/" + subtype.encode() + b'; charset="utf-8"',
        b"Content-Transfer-Encoding: " + encoding,
        b"",
        payload.replace(b"\n", CRLF),
    ]


def mime_build(message: Outgoing, *, date: datetime, routing_headers: bool) -> bytes:
    """The message as bytes. With `routing_headers`, the X-Tenant/X-Campaign/X-Kind headers our
    MTA's policy reads (and removes) are added; mail for anyone else's server never has them."""
    outgoing_check(message)
    lines = [
        _header("From", _mailbox(message.sender_name, message.sender)),
        _header("To", _mailbox(message.recipient_name, message.recipient)),
        _header("Subject", message.subject),
        b"Date: " + format_datetime(date).encode("ascii"),
        b"Message-ID: " + message_id_header(message.message_id).encode("ascii"),
    ]
    lines.extend(_header(name, value) for name, value in message.headers.items())
    if routing_headers:
        lines.append(_header(TENANT_HEADER, message.tenant))
        if message.campaign:
            lines.append(_header(CAMPAIGN_HEADER, message.campaign))
        lines.append(_header(KIND_HEADER, message.kind))
        if message.resend:
            lines.append(_header(RESEND_HEADER, "1"))
    lines.append(b"MIME-Version: 1.0")
    if not message.html_body:
        lines.extend(_body(message.text_body, "plain"))
        ending = b"" if not lines[-1] or lines[-1].endswith(CRLF) else CRLF
        return CRLF.join(lines) + ending
    boundary = b"=_tg_" + secrets.token_hex(12).encode("ascii")
    lines.append(b'Content-Type: multipart/alternative; boundary="' + boundary + b'"')
    lines.append(b"")
    for content, subtype in ((message.text_body, "plain"), (message.html_body, "html")):
        lines.append(b"--" + boundary)
        lines.extend(_body(content, subtype))
    lines.append(b"--" + boundary + b"--")
    lines.append(b"")
    return CRLF.join(lines)
