"""KumoMTA log records -> the normalized events the product stores (pure: standard library only).

This runs in the log-hook hot path (well over 10,000 records/s), so it avoids per-call regex
compilation, JSON round trips for already-decoded data and anything that allocates needlessly.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.parser import BytesHeaderParser, HeaderParser
from typing import Any


class EventKind(enum.StrEnum):
    SENT = "sent"
    DELIVERED = "delivered"
    BOUNCE_HARD = "bounce_hard"
    BOUNCE_SOFT = "bounce_soft"
    DEFERRED = "deferred"
    COMPLAINT = "complaint"
    OPENED = "opened"
    CLICKED = "clicked"
    REPLIED = "replied"
    UNSUBSCRIBED = "unsubscribed"
    RESCUED = "rescued_from_spam"
    LANDED_IN_SPAM = "landed_in_spam"
    SPAM_BLOCK = "spam_block"
    # Internal, never stored or counted: KumoMTA could not queue a message it had just logged as
    # received (see RECEPTION_FAILURES); processing undoes that Reception (`message_id` is the
    # spool id). Not one of the kinds customers see (`reputation.models.EventKind`).
    RECEPTION_UNDONE = "reception_undone"


@dataclass(frozen=True)
class MappedEvent:
    kind: EventKind
    tenant: str  # the sending domain's public id (e.g. "dom_abc..."), "" when unknown
    recipient: str  # lower-cased address, "" when unknown
    message_id: str  # spool id; for Feedback the original message's id when known, else ""
    occurred_at: float  # unix seconds
    classification: str  # bounce_classification or ""
    response: str  # "code enhanced content" summary, <= 500 chars, or ""
    mailbox: str  # lower-cased sender address of the ORIGINAL mail, "" when unknown
    message_kind: str  # "campaign" | "warmup" | ""
    campaign: str  # meta "campaign" or ""
    record_type: str = ""  # the KumoMTA record type ("Reception", "OOB", "Feedback", ...)
    # The original message's RFC 5322 Message-ID without angle brackets, "" when unknown: what
    # ties the record to the platform's own `Message` row.
    rfc_message_id: str = ""


# A "permanent" record carrying one of these classes is a temporary condition that outlived
# its retries (or was bounced early): it must not be scored like a dead address.
TRANSIENT_CLASSES = frozenset(
    {"QuotaIssues", "TransientFailure", "NoAnswerFromHost", "BadConnection"}
)
# KumoMTA's own spam classes (crates/bounce-classify: "blocked ... as coming from a known spam
# source", "blocked ... as spam", "refused or blocked due to spam related reasons"). The operator
# chooses the classifier rules, so these are trusted; free text from a receiving server is not.
SPAM_BLOCK_CLASSES = frozenset({"SpamBlock", "SpamContent", "SpamRelated"})
AUTO_REPLY_CLASS = "AutoReply"


@dataclass(frozen=True)
class PublicBlocklist:
    """A public blocklist, recognised by the reply format its documentation gives receivers.

    `needle` is a lower-case text every matching reply contains: a cheap test first, and what
    makes "no list named, no spam block" hold."""

    name: str
    needle: str
    pattern: re.Pattern[str]


# The stock IANA classifier files a DNSBL rejection ("554 5.7.1 ... blocked using
# zen.spamhaus.org") under a generic class, so a reply that names a public list counts too. A
# receiver's own wording ("listed at our local denylist") names no list and is an ordinary
# bounce: one server's private policy must not take a domain out of rotation. Patterns run on
# the lower-cased reply.
PUBLIC_BLOCKLISTS = (
    # Spamhaus (ZEN, SBL, XBL, PBL, DBL, ZRD and the DQS zones): "blocked using
    # zen.spamhaus.org", "https://www.spamhaus.org/query/ip/203.0.113.5", "check.spamhaus.org".
    PublicBlocklist(
        "Spamhaus",
        "spamhaus",
        re.compile(
            r"\b(?:zen|sbl|xbl|pbl|dbl|sbl-xbl|zrd|authbl)\.spamhaus\.org\b"
            r"|\.(?:zen|sbl|xbl|pbl|dbl|zrd)\.dq\.spamhaus\.net\b"
            r"|\bspamhaus\.org/(?:query|lookup|sbl|xbl|pbl|dbl)\b"
            r"|\bcheck\.spamhaus\.org\b"
        ),
    ),
    # SpamCop Blocking List: "listed at bl.spamcop.net", "https://www.spamcop.net/bl.shtml?...".
    PublicBlocklist(
        "SpamCop",
        "spamcop",
        re.compile(r"\bbl\.spamcop\.net\b|\bspamcop\.net/(?:bl\.shtml|w3m\?action=checkblock)"),
    ),
    # Barracuda Reputation Block List: "b.barracudacentral.org",
    # "http://www.barracudanetworks.com/reputation/?pr=1&ip=...", "barracudacentral.org/rbl/...".
    PublicBlocklist(
        "Barracuda",
        "barracuda",
        re.compile(
            r"\bbb?\.barracudacentral\.org\b|\bbarracudacentral\.org/(?:rbl|lookups)"
            r"|\bbarracudanetworks\.com/reputation\b"
        ),
    ),
    # SURBL (URIs in the message): "multi.surbl.org", "https://www.surbl.org/lists".
    PublicBlocklist("SURBL", "surbl", re.compile(r"\bmulti\.surbl\.org\b|\bsurbl\.org/")),
    # URIBL: "multi.uribl.com", "https://admin.uribl.com/...".
    PublicBlocklist("URIBL", "uribl", re.compile(r"\bmulti\.uribl\.com\b|\buribl\.com/")),
    # Microsoft (Outlook.com, Hotmail): "part of their network is on our block list (S3150)";
    # S3140 is the same list for a single IP.
    PublicBlocklist(
        "Microsoft block list",
        "on our block list (s31",
        re.compile(r"\bon our block list \(s31[45]0\)"),
    ),
    # Microsoft 365 (Exchange Online Protection), 5.7.606-649: "Access denied, banned sending
    # IP [203.0.113.5]. To request removal from this list please visit https://sender.office.com/".
    PublicBlocklist(
        "Microsoft banned sending IP",
        "banned sending ip",
        re.compile(r"\baccess denied, banned sending ip\b"),
    ),
    # UCEPROTECT levels 1-3: "dnsbl-1.uceprotect.net".
    PublicBlocklist("UCEPROTECT", "uceprotect", re.compile(r"\bdnsbl-[123]\.uceprotect\.net\b")),
    # Passive Spam Block List: "psbl.surriel.com".
    PublicBlocklist("PSBL", "psbl.surriel", re.compile(r"\bpsbl\.surriel\.com\b")),
    # Abusix Mail Intelligence: "combined.mail.abusix.zone", "lookup.abusix.com".
    PublicBlocklist(
        "Abusix",
        "abusix",
        re.compile(r"\.mail\.abusix\.zone\b|\blookup\.abusix\.com\b"),
    ),
    # Mailspike: "bl.mailspike.net", "z.mailspike.net".
    PublicBlocklist("Mailspike", "mailspike", re.compile(r"\b(?:bl|z)\.mailspike\.net\b")),
)

MESSAGE_KINDS = frozenset({"campaign", "warmup"})
RESPONSE_MAX_CHARS = 500
ADDRESS_MAX_CHARS = 320  # longer is not an address (RFC 5321 allows 64 + 1 + 255)
ID_MAX_CHARS = 64

# Records KumoMTA writes about itself rather than about a message the platform sent:
# - with `deferred_generation`, an HTTP injection request is first stored as one message on this
#   queue (Reception, then Delivery or Bounce) before it becomes the real messages;
# - when queue insertion fails while a message is received, KumoMTA removes it from the spool and
#   logs a Bounce (code 500, no attempt made) with one of these texts, after the Reception it had
#   already logged for it; the client is told to try again (an HTTP failed recipient, an SMTP
#   421 or 4xx), so the mail is not lost and nobody bounced it: it was never sent. Such a Bounce
#   maps to the internal RECEPTION_UNDONE marker.
GENERATOR_QUEUE = "generator.kumomta.internal"
RECEPTION_FAILURES = (
    "KumoMTA internal: QueueManager::insert failed during reception",
    "KumoMTA internal: Message::save failed for other messages in the same batch during reception",
)
# Only the headers of an ARF report's embedded original are read, so a bounded prefix is enough.
ORIGINAL_MESSAGE_MAX_CHARS = 64 * 1024

# A record's time outside this range is not believed (a year-9999 or negative timestamp, from a
# broken node or a forged complaint, must neither crash processing nor land in a far day's
# counters): the record then counts at the time it was received. Records may run a little
# ahead of this server's clock, never more than CLOCK_SKEW.
EARLIEST_TIME = 946_684_800.0  # 2000-01-01T00:00:00Z
LATEST_TIME = 4_102_444_800.0  # 2100-01-01T00:00:00Z, when the time of receipt is not known
CLOCK_SKEW = 3600.0

_FAILURE_TYPES = frozenset({"Bounce", "Expiration", "OOB"})
Record = dict[str, Any]  # one MTA log record as parsed from JSON
_EMPTY: Record = {}


def record_key(record: Record) -> str:
    """Stable idempotency key of a log record: replays collide, distinct attempts do not."""
    if not isinstance(record, dict):
        raise ValueError("a KumoMTA log record must be a JSON object")
    timestamp = record.get("timestamp")
    if timestamp is None:
        timestamp = record.get("event_time")
    parts = [
        record.get("type"),
        record.get("id"),
        timestamp,
        _joined(record.get("recipient")),
        record.get("num_attempts"),
    ]
    if record.get("type") == "Feedback":
        report = _feedback_report(record)
        parts.append(_joined(report.get("original_rcpto_to")))
        parts.append(_joined(report.get("original_mail_from")))
    # The unit separator cannot occur in addresses or ids, so fields cannot run into each other.
    raw = "\x1f".join("" if part is None else str(part) for part in parts)
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def tenant_of(record: Record) -> str:
    """The sending domain's public id a record belongs to, or "" when it cannot be told."""
    if not isinstance(record, dict):
        raise ValueError("a KumoMTA log record must be a JSON object")
    if record.get("type") == "Feedback":
        tenant = _text(_supplemental_trace(_feedback_report(record)).get("tenant"))
        if tenant:
            return tenant
    return _envelope_tenant(record)


def map_record(record: Record, *, received_at: float | None = None) -> list[MappedEvent]:
    """Normalized events for one KumoMTA log record; [] for record types the product ignores.

    Text is cleaned to what the database stores (no NUL characters, addresses and ids within
    their columns); `received_at` (unix seconds) stands in for a missing or unbelievable time."""
    if not isinstance(record, dict):
        raise ValueError("a KumoMTA log record must be a JSON object")
    record_type = record.get("type")
    if not isinstance(record_type, str) or not record_type:
        raise ValueError("a KumoMTA log record must have a type")
    if record.get("queue") == GENERATOR_QUEUE:
        return []

    if record_type == "Reception":
        return _events(record, EventKind.SENT, received_at)
    if record_type == "Delivery":
        return _events(record, EventKind.DELIVERED, received_at)
    if record_type == "TransientFailure":
        if record.get("bounce_classification") == AUTO_REPLY_CLASS:
            return []  # an auto-reply is not a bounce, and must not feed the 5-soft rule
        # Five consecutive soft bounces become a hard one in the service, which sees history.
        return _events(record, EventKind.BOUNCE_SOFT, received_at)
    if record_type in _FAILURE_TYPES:
        if record_type == "Bounce" and is_reception_failure(record):
            return _events(record, EventKind.RECEPTION_UNDONE, received_at)
        classification = _text(record.get("bounce_classification"))
        if classification == AUTO_REPLY_CLASS:
            return []
        if is_spam_block(classification, record.get("response")):
            return _events(record, EventKind.SPAM_BLOCK, received_at)
        if classification in TRANSIENT_CLASSES:
            return _events(record, EventKind.BOUNCE_SOFT, received_at)
        return _events(record, EventKind.BOUNCE_HARD, received_at)
    if record_type == "Feedback":
        return _complaints(record, received_at)
    # AdminBounce, Rejection, Delayed, XferOut/XferIn, rebinds and future types: accepted, unused.
    return []


def is_reception_failure(record: Record) -> bool:
    """True for the Bounce KumoMTA logs when it could not queue a message it was receiving (and
    had already logged as received).

    No delivery was attempted (`num_attempts` 0): a remote server's reply quoting these words
    comes after an attempt, and stays a bounce."""
    attempts = record.get("num_attempts")
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts != 0:
        return False
    response = record.get("response")
    content = response.get("content") if isinstance(response, dict) else None
    return isinstance(content, str) and content.startswith(RECEPTION_FAILURES)


def message_id_of(record: Record) -> str:
    """The Message-ID (without angle brackets) of the platform's message a record is about, or
    "" when the record does not tell.

    Our MTA logs it in meta `message_id`, or as a logged `Message-ID` header. An ARF report's own
    meta and headers are the report's, so for Feedback the trace and the embedded original are
    read instead; an OOB record's are the delivery status notification's, and KumoMTA does not
    parse the original it quotes, so an OOB record tells none."""
    if not isinstance(record, dict):
        raise ValueError("a KumoMTA log record must be a JSON object")
    record_type = record.get("type")
    if record_type == "OOB":
        return ""
    if record_type == "Feedback":
        report = _feedback_report(record)
        return _message_id(_supplemental_trace(report).get("message_id")) or _original_message_id(
            report.get("original_message")
        )
    meta = record.get("meta")
    found = _message_id(meta.get("message_id")) if isinstance(meta, dict) else ""
    if found:
        return found
    headers = record.get("headers")
    if isinstance(headers, dict):
        for name, value in headers.items():
            # KumoMTA keeps the header name as the message spelled it ("Message-Id", ...).
            if isinstance(name, str) and name.lower() == "message-id":
                found = _message_id(value)
                if found:
                    return found
    return ""


def is_spam_block(classification: str, response: object) -> bool:
    """True for a rejection KumoMTA classed as spam, or one that names a public blocklist."""
    return classification in SPAM_BLOCK_CLASSES or bool(blocklist_named(response))


def blocklist_named(response: object) -> str:
    """The public blocklist a rejection names in its documented reply format, or ""."""
    content = response.get("content") if isinstance(response, dict) else response
    if not isinstance(content, str) or not content:
        return ""
    content = content.lower()
    for blocklist in PUBLIC_BLOCKLISTS:
        if blocklist.needle in content and blocklist.pattern.search(content):
            return blocklist.name
    return ""


# --- building events ---------------------------------------------------------------------------


def _events(record: Record, kind: EventKind, received_at: float | None) -> list[MappedEvent]:
    meta = record.get("meta")
    if not isinstance(meta, dict):
        meta = _EMPTY
    tenant = _text(meta.get("tenant")) or _queue_tenant(record.get("queue"))
    message_kind = _text(meta.get("kind")) or _text(meta.get("x_kind"))
    recipients = _recipients(record.get("recipient"))
    shared = MappedEvent(
        kind=kind,
        tenant=tenant,
        recipient=recipients[0],
        message_id=_text(record.get("id"))[:ID_MAX_CHARS],
        occurred_at=_occurred_at(record, received_at),
        classification=_text(record.get("bounce_classification")),
        response=_response_summary(record.get("response")),
        mailbox=_address(record.get("sender")),
        message_kind=message_kind if message_kind in MESSAGE_KINDS else "",
        campaign=_text(meta.get("campaign"))
        or _text(meta.get("x_campaign"))
        or _queue_campaign(record.get("queue")),
        record_type=_text(record.get("type")),
        rfc_message_id=message_id_of(record),
    )
    return _per_recipient(shared, recipients)


def _complaints(record: Record, received_at: float | None) -> list[MappedEvent]:
    # The top-level sender/recipient are the ARF report's envelope (e.g. fbl@provider ->
    # fbl@us): the complainer and the original sender only exist inside feedback_report.
    report = _feedback_report(record)
    trace = _supplemental_trace(report)
    traced = _address(trace.get("recipient")) or _address(trace.get("x_recipient"))
    recipients = [traced] if traced else _recipients(report.get("original_rcpto_to"))
    message_kind = _text(trace.get("kind")) or _text(trace.get("x_kind"))
    shared = MappedEvent(
        kind=EventKind.COMPLAINT,
        tenant=_text(trace.get("tenant")) or _envelope_tenant(record),
        recipient=recipients[0],
        # The report's own spool id would mislead joins; only the traced id is the original's.
        message_id=_text(trace.get("id"))[:ID_MAX_CHARS],
        occurred_at=_occurred_at(record, received_at),
        classification=_text(record.get("bounce_classification")),
        response="",
        mailbox=_address(report.get("original_mail_from")),
        message_kind=message_kind if message_kind in MESSAGE_KINDS else "",
        campaign=_text(trace.get("campaign")) or _text(trace.get("x_campaign")),
        record_type="Feedback",
        rfc_message_id=message_id_of(record),
    )
    return _per_recipient(shared, recipients)


def _per_recipient(event: MappedEvent, recipients: list[str]) -> list[MappedEvent]:
    # Nearly every record has one recipient: `replace` (slow on a dataclass) only for the rest.
    if len(recipients) == 1:
        return [event]
    return [replace(event, recipient=rcpt) for rcpt in recipients]


# --- field helpers -----------------------------------------------------------------------------


def _text(value: object) -> str:
    # PostgreSQL text cannot hold NUL (one would fail the whole batch), and an id, tenant or
    # address with a NUL in it is no real one: unknown, rather than stripped into a real one.
    if not isinstance(value, str) or "\x00" in value:
        return ""
    return value


def _prose(value: object) -> str:
    """Free text (a server's reply) without the NULs the database cannot store."""
    if not isinstance(value, str):
        return ""
    return value.replace("\x00", "") if "\x00" in value else value


def _address(value: object) -> str:
    if isinstance(value, list):
        value = value[0] if value else ""
    # ARF reports may keep the angle brackets of the original envelope ("<a@b>").
    address = _text(value).strip().strip("<>").strip().lower()
    return address if len(address) <= ADDRESS_MAX_CHARS else ""


def _recipients(value: object) -> list[str]:
    if isinstance(value, list):
        recipients = [address for address in map(_address, value) if address]
    else:
        address = _address(value)
        recipients = [address] if address else []
    # A record without a usable recipient still happened: keep it, unattributed.
    return recipients or [""]


# A msg-id as the platform writes it: visible ASCII without angle brackets or spaces (a NUL, a
# control character or a lone surrogate from undecodable bytes is no id of ours, and the database
# could not store some of them).
_ID_CHARS = r"[\x21-\x3b\x3d\x3f-\x7e]{1,255}"
_MESSAGE_ID = re.compile(_ID_CHARS)
_BRACKETED_MESSAGE_ID = re.compile(rf"<\s*({_ID_CHARS})\s*>")


def _message_id(value: object) -> str:
    """The msg-id in a Message-ID value ("<id>", a bare "id", or a list of them), or ""."""
    if isinstance(value, list):
        value = next((item for item in value if isinstance(item, str) and item), "")
    if not isinstance(value, str):
        return ""
    text = value[:1024].strip()  # a msg-id is short: bounded work on a long value
    if text.startswith("<"):
        match = _BRACKETED_MESSAGE_ID.match(text)
        return match.group(1) if match else ""
    return text if _MESSAGE_ID.fullmatch(text) else ""


def _original_message_id(original: object) -> str:
    """The Message-ID header of an ARF report's embedded original (text, or a list of byte
    values when it was not UTF-8), or ""."""
    try:
        if isinstance(original, str):
            parsed = HeaderParser().parsestr(original[:ORIGINAL_MESSAGE_MAX_CHARS])
        elif isinstance(original, list):
            raw = bytes(original[:ORIGINAL_MESSAGE_MAX_CHARS])  # ValueError unless bytes
            parsed = BytesHeaderParser().parsebytes(raw)
        else:
            return ""
        # Header values of undecodable bytes come back as Header objects; str() renders them.
        values = parsed.get_all("Message-ID") or []
        return _message_id([str(value) for value in values])
    except Exception:
        # What a report quotes is anyone's text, and the email package's parser is a large
        # surface: an original it cannot read simply tells no Message-ID.
        return ""


def _joined(value: object) -> str:
    if isinstance(value, list):
        return ",".join("" if item is None else str(item) for item in value)
    return "" if value is None else str(value)


def _envelope_tenant(record: Record) -> str:
    meta = record.get("meta")
    tenant = _text(meta.get("tenant")) if isinstance(meta, dict) else ""
    return tenant or _queue_tenant(record.get("queue"))


def _queue_tenant(queue: object) -> str:
    # Queue names are "campaign:tenant@domain" with unset parts left out; a domain has no "@",
    # and rpartition keeps a campaign that itself contains ":" out of the tenant.
    if not isinstance(queue, str):
        return ""
    left, at, _domain = _text(queue).rpartition("@")
    if not at:
        return ""
    return left.rpartition(":")[2]


def _queue_campaign(queue: object) -> str:
    if not isinstance(queue, str):
        return ""
    left, at, _domain = _text(queue).rpartition("@")
    if not at:
        left = _domain
    campaign, colon, _tenant = left.rpartition(":")
    return campaign if colon else ""


def _occurred_at(record: Record, received_at: float | None) -> float:
    latest = LATEST_TIME if received_at is None else min(LATEST_TIME, received_at + CLOCK_SKEW)
    timestamp = record.get("timestamp")
    # Compared before float(): an integer beyond a double's range would raise there.
    if (
        isinstance(timestamp, int | float)
        and not isinstance(timestamp, bool)
        and EARLIEST_TIME <= timestamp <= latest
    ):
        return float(timestamp)
    event_time = record.get("event_time")
    if isinstance(event_time, str) and event_time:
        try:
            # Python 3.11 accepts "Z" and truncates KumoMTA's nanoseconds to microseconds.
            parsed = datetime.fromisoformat(event_time)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            seconds = parsed.timestamp()
        except (ValueError, OverflowError):
            seconds = -1.0
        if EARLIEST_TIME <= seconds <= latest:
            return seconds
    return 0.0 if received_at is None else received_at


def _response_summary(response: object) -> str:
    if isinstance(response, str):
        return _prose(response)[:RESPONSE_MAX_CHARS]
    if not isinstance(response, dict):
        return ""
    parts = []
    code = response.get("code")
    if isinstance(code, int) and not isinstance(code, bool):
        parts.append(str(code))
    enhanced = response.get("enhanced_code")
    if isinstance(enhanced, dict):
        code_text = f"{enhanced.get('class')}.{enhanced.get('subject')}.{enhanced.get('detail')}"
        parts.append(_prose(code_text[:RESPONSE_MAX_CHARS]))
    content = _prose(response.get("content"))
    if content:
        if "\n" in content or "\r" in content:
            content = " ".join(content.split())  # multi-line replies are stored on one line
        parts.append(content)
    return " ".join(parts)[:RESPONSE_MAX_CHARS]


def _feedback_report(record: Record) -> Record:
    report = record.get("feedback_report")
    return report if isinstance(report, dict) else _EMPTY


def _supplemental_trace(report: Record) -> Record:
    trace = report.get("supplemental_trace")
    if isinstance(trace, dict):
        return trace
    if isinstance(trace, str) and trace:
        try:
            decoded = json.loads(trace)
        except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested too deep
            return _EMPTY
        if isinstance(decoded, dict):
            return decoded
    return _EMPTY
