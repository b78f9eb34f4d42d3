"""KumoMTA log records -> the normalized events the product stores (pure: standard library only).

This runs in the log-hook hot path (well over 10,000 records/s), so it avoids per-call regex
compilation, JSON round trips for already-decoded data and anything that allocates needlessly.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
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


# A "permanent" record carrying one of these classes is a temporary condition that outlived
# its retries (or was bounced early): it must not be scored like a dead address.
TRANSIENT_CLASSES = frozenset(
    {"QuotaIssues", "TransientFailure", "NoAnswerFromHost", "BadConnection"}
)
SPAM_BLOCK_CLASSES = frozenset({"SpamBlock", "SpamContent", "SpamRelated"})
AUTO_REPLY_CLASS = "AutoReply"

# The stock IANA classifier files a DNSBL rejection ("554 5.7.1 ... blocked using
# zen.spamhaus.org") under a generic class, so the response text is checked as well.
BLOCKLIST_MARKERS = (
    "spamhaus",
    "spamcop",
    "barracuda",
    "blocklist",
    "block list",
    "blacklist",
    "denylist",
    "listed at",
    "blocked using",
    "dnsbl",
)

MESSAGE_KINDS = frozenset({"campaign", "warmup"})
RESPONSE_MAX_CHARS = 500

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


def map_record(record: Record) -> list[MappedEvent]:
    """Normalized events for one KumoMTA log record; [] for record types the product ignores."""
    if not isinstance(record, dict):
        raise ValueError("a KumoMTA log record must be a JSON object")
    record_type = record.get("type")
    if not isinstance(record_type, str) or not record_type:
        raise ValueError("a KumoMTA log record must have a type")

    if record_type == "Reception":
        return _events(record, EventKind.SENT)
    if record_type == "Delivery":
        return _events(record, EventKind.DELIVERED)
    if record_type == "TransientFailure":
        if record.get("bounce_classification") == AUTO_REPLY_CLASS:
            return []  # an auto-reply is not a bounce, and must not feed the 5-soft rule
        # Five consecutive soft bounces become a hard one in the service, which sees history.
        return _events(record, EventKind.BOUNCE_SOFT)
    if record_type in _FAILURE_TYPES:
        classification = _text(record.get("bounce_classification"))
        if classification == AUTO_REPLY_CLASS:
            return []
        if classification in SPAM_BLOCK_CLASSES or _mentions_blocklist(record.get("response")):
            return _events(record, EventKind.SPAM_BLOCK)
        if classification in TRANSIENT_CLASSES:
            return _events(record, EventKind.BOUNCE_SOFT)
        return _events(record, EventKind.BOUNCE_HARD)
    if record_type == "Feedback":
        return _complaints(record)
    # AdminBounce, Rejection, Delayed, XferOut/XferIn, rebinds and future types: accepted, unused.
    return []


# --- building events ---------------------------------------------------------------------------


def _events(record: Record, kind: EventKind) -> list[MappedEvent]:
    meta = record.get("meta")
    if not isinstance(meta, dict):
        meta = _EMPTY
    tenant = _text(meta.get("tenant")) or _queue_tenant(record.get("queue"))
    message_kind = _text(meta.get("kind")) or _text(meta.get("x_kind"))
    shared = MappedEvent(
        kind=kind,
        tenant=tenant,
        recipient="",
        message_id=_text(record.get("id")),
        occurred_at=_occurred_at(record),
        classification=_text(record.get("bounce_classification")),
        response=_response_summary(record.get("response")),
        mailbox=_address(record.get("sender")),
        message_kind=message_kind if message_kind in MESSAGE_KINDS else "",
        campaign=_text(meta.get("campaign"))
        or _text(meta.get("x_campaign"))
        or _queue_campaign(record.get("queue")),
    )
    return [replace(shared, recipient=rcpt) for rcpt in _recipients(record.get("recipient"))]


def _complaints(record: Record) -> list[MappedEvent]:
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
        recipient="",
        # The report's own spool id would mislead joins; only the traced id is the original's.
        message_id=_text(trace.get("id")) or _text(trace.get("message_id")),
        occurred_at=_occurred_at(record),
        classification=_text(record.get("bounce_classification")),
        response="",
        mailbox=_address(report.get("original_mail_from")),
        message_kind=message_kind if message_kind in MESSAGE_KINDS else "",
        campaign=_text(trace.get("campaign")) or _text(trace.get("x_campaign")),
    )
    return [replace(shared, recipient=rcpt) for rcpt in recipients]


# --- field helpers -----------------------------------------------------------------------------


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _address(value: object) -> str:
    if isinstance(value, list):
        value = value[0] if value else ""
    if not isinstance(value, str):
        return ""
    # ARF reports may keep the angle brackets of the original envelope ("<a@b>").
    return value.strip().strip("<>").strip().lower()


def _recipients(value: object) -> list[str]:
    if isinstance(value, list):
        recipients = [address for address in map(_address, value) if address]
    else:
        address = _address(value)
        recipients = [address] if address else []
    # A record without a usable recipient still happened: keep it, unattributed.
    return recipients or [""]


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
    left, at, _domain = queue.rpartition("@")
    if not at:
        return ""
    return left.rpartition(":")[2]


def _queue_campaign(queue: object) -> str:
    if not isinstance(queue, str):
        return ""
    left, at, _domain = queue.rpartition("@")
    if not at:
        left = _domain
    campaign, colon, _tenant = left.rpartition(":")
    return campaign if colon else ""


def _occurred_at(record: Record) -> float:
    timestamp = record.get("timestamp")
    if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
        return float(timestamp)
    event_time = record.get("event_time")
    if isinstance(event_time, str) and event_time:
        try:
            # Python 3.11 accepts "Z" and truncates KumoMTA's nanoseconds to microseconds.
            parsed = datetime.fromisoformat(event_time)
        except ValueError:
            return 0.0
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    return 0.0


def _response_summary(response: object) -> str:
    if isinstance(response, str):
        return response[:RESPONSE_MAX_CHARS]
    if not isinstance(response, dict):
        return ""
    parts = []
    code = response.get("code")
    if isinstance(code, int) and not isinstance(code, bool):
        parts.append(str(code))
    enhanced = response.get("enhanced_code")
    if isinstance(enhanced, dict):
        parts.append(f"{enhanced.get('class')}.{enhanced.get('subject')}.{enhanced.get('detail')}")
    content = response.get("content")
    if isinstance(content, str) and content:
        if "\n" in content or "\r" in content:
            content = " ".join(content.split())  # multi-line replies are stored on one line
        parts.append(content)
    return " ".join(parts)[:RESPONSE_MAX_CHARS]


def _mentions_blocklist(response: object) -> bool:
    content = response.get("content") if isinstance(response, dict) else response
    if not isinstance(content, str) or not content:
        return False
    content = content.lower()
    return any(marker in content for marker in BLOCKLIST_MARKERS)


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
        except ValueError:
            return _EMPTY
        if isinstance(decoded, dict):
            return decoded
    return _EMPTY
