"""Small, realistic KumoMTA log records for tests."""

import itertools
import threading
import time
from datetime import datetime

from django.utils import timezone

from sending.models import Message

_ids = itertools.count(1)


def record(
    kind: str,
    domain,
    recipient: str,
    *,
    sender: str = "alex",
    at: float | None = None,
    message_id: str | None = None,
    rfc_message_id: str = "",
    attempt: int = 1,
    **extra,
) -> dict:
    """`message_id` is the MTA's spool id; `rfc_message_id` the message's Message-ID, logged in
    meta `message_id` as the policy does."""
    at = at or time.time()
    message_id = message_id or f"{next(_ids):032x}"
    base = {
        "type": kind,
        "id": message_id,
        "sender": f"{sender}@{domain.name}",
        "recipient": recipient,
        "queue": f"{domain.public_id}@{recipient.split('@')[1]}",
        "site": "",
        "size": 2048,
        "timestamp": at,
        "created": at - 1,
        "num_attempts": attempt,
        "meta": {"tenant": domain.public_id, "kind": "campaign"},
        "headers": {},
        "nodeid": "kumo-1",
        "response": {
            "code": 250,
            "enhanced_code": {"class": 2, "subject": 0, "detail": 0},
            "content": "OK",
            "command": None,
        },
        "bounce_classification": "Uncategorized",
    }
    if rfc_message_id:
        base["meta"]["message_id"] = rfc_message_id
    base.update(extra)
    return base


def sent(domain, recipient: str, **kw) -> dict:
    return record("Reception", domain, recipient, **kw)


def delivered(domain, recipient: str, **kw) -> dict:
    return record("Delivery", domain, recipient, **kw)


def hard_bounce(domain, recipient: str, **kw) -> dict:
    return record(
        "Bounce",
        domain,
        recipient,
        bounce_classification="InvalidRecipient",
        response={
            "code": 550,
            "enhanced_code": {"class": 5, "subject": 1, "detail": 1},
            "content": "5.1.1 The email account that you tried to reach does not exist",
            "command": "RCPT TO",
        },
        **kw,
    )


def soft_bounce(domain, recipient: str, **kw) -> dict:
    return record(
        "TransientFailure",
        domain,
        recipient,
        bounce_classification="QuotaIssues",
        response={
            "code": 452,
            "enhanced_code": {"class": 4, "subject": 2, "detail": 2},
            "content": "4.2.2 The email account that you tried to reach is over quota",
            "command": "RCPT TO",
        },
        **kw,
    )


def spam_block(domain, recipient: str, **kw) -> dict:
    return record(
        "Bounce",
        domain,
        recipient,
        bounce_classification="SpamBlock",
        response={
            "code": 554,
            "enhanced_code": {"class": 5, "subject": 7, "detail": 1},
            "content": "Service unavailable; Client host [203.0.113.5] blocked using "
            "zen.spamhaus.org",
            "command": "MAIL FROM",
        },
        **kw,
    )


def complaint(
    domain,
    recipient: str,
    *,
    message_id: str = "",
    rfc_message_id: str = "",
    kind: str = "campaign",
    sender: str = "alex",
    tenant: str | None = None,
    at: float | None = None,
) -> dict:
    """An ISP's ARF report about mail `domain` sent to `recipient`, as KumoMTA logs it: the
    trace names the tenant (`tenant` overrides it: a forger may name anyone) and recipient."""
    at = at or time.time()
    return {
        "type": "Feedback",
        "id": f"{next(_ids):032x}",
        "sender": "fbl@gmail.com",
        "recipient": "fbl@platform.example",
        "queue": "fbl",
        "timestamp": at,
        "feedback_report": {
            "feedback_type": "abuse",
            "original_mail_from": f"{sender}@{domain.name}",
            "original_rcpto_to": [recipient],
            "reported_domain": domain.name,
            "supplemental_trace": {
                "tenant": domain.public_id if tenant is None else tenant,
                "recipient": recipient,
                "id": message_id,
                "message_id": rfc_message_id,
                "kind": kind,
            },
        },
    }


def oob_bounce(domain, recipient: str, *, sender: str = "alex", at: float | None = None) -> dict:
    """A delivery status notification (Action: failed) a relay mailed back to `sender`, as
    KumoMTA logs it: the DSN's own spool id and meta, no tenant, our mailbox as `sender`."""
    at = at or time.time()
    return {
        "type": "OOB",
        "id": f"{next(_ids):032x}",
        "sender": f"{sender}@{domain.name}",
        "recipient": recipient,
        "queue": "bounces.platform.example",
        "site": "",
        "size": 0,
        "timestamp": at,
        "num_attempts": 0,
        "meta": {},
        "headers": {},
        "peer_address": {"name": "relay.example.org", "addr": "198.51.100.7"},
        "response": {
            "code": 550,
            "enhanced_code": {"class": 5, "subject": 1, "detail": 1},
            "content": "5.1.1 <" + recipient + ">: Recipient address rejected: User unknown",
            "command": None,
        },
        "bounce_classification": "InvalidRecipient",
        "feedback_report": None,
    }


def reception_failure(domain, recipient: str, *, message_id: str, **kw) -> dict:
    """The Bounce KumoMTA logs when it cannot queue a message it is receiving (the sender is
    told to try again)."""
    return record(
        "Bounce",
        domain,
        recipient,
        message_id=message_id,
        attempt=0,
        bounce_classification="Uncategorized",
        response={
            "code": 500,
            "enhanced_code": None,
            "content": "KumoMTA internal: QueueManager::insert failed during reception: "
            "no egress pool for tenant",
            "command": None,
        },
        site="",
        peer_address=None,
        **kw,
    )


def traffic(domain, n: int, *, bounces: int = 0, prefix: str = "p") -> list[dict]:
    """n messages sent; the first `bounces` hard-bounce, the rest are delivered."""
    out = []
    for i in range(n):
        rcpt = f"{prefix}{i}@example.org"
        out.append(sent(domain, rcpt))
        out.append(hard_bounce(domain, rcpt) if i < bounces else delivered(domain, rcpt))
    return out


def opened_event(domain, n: int) -> dict:
    """A product event for POST /hooks/events/: message `m{n}` was opened."""
    return {
        "domain": domain.public_id,
        "kind": "opened",
        "source_key": f"t:{n}:opened",
        "message_id": f"m{n}",
        "recipient": f"p{n}@example.org",
    }


def events_post(client, body: dict, token: str):
    """POST product events as the simulator does."""
    return client.post(
        "/hooks/events/",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def outbound(
    mailbox,
    recipient: str,
    *,
    state: str = "sending",
    mta_id: str = "",
    handed_over_at: datetime | None = None,
    kind: str = "campaign",
) -> Message:
    """A message the platform reserved (with its Message-ID) and took as far as `state`."""
    from sending.services.outbound import MessageDraft, messages_reserve

    (message,) = messages_reserve(
        drafts=[
            MessageDraft(
                mailbox=mailbox,
                kind=kind,
                recipient=recipient,
                subject="Quick question",
                text_body="Hi,\n\nworth a chat?\n",
            )
        ],
        enqueue=False,
    )
    if state != "reserved":
        claimed_at = handed_over_at or timezone.now()
        if state != "sending":
            handed_over_at = claimed_at
        Message.objects.filter(pk=message.pk).update(
            state=state,
            claimed_at=claimed_at,
            handed_over_at=handed_over_at,
            mta_id=mta_id,
            attempts=1,
        )
        message.refresh_from_db()
    return message


def pause_in_first_worker(
    monkeypatch, module, name: str
) -> tuple[threading.Event, threading.Event]:
    """Make `module.name` stop, once it has run, in the thread named "first" until released:
    returns (reached, release)."""
    reached, release = threading.Event(), threading.Event()
    original = getattr(module, name)

    def paused(*args, **kwargs):
        result = original(*args, **kwargs)
        if threading.current_thread().name == "first":
            reached.set()
            assert release.wait(10)
        return result

    monkeypatch.setattr(module, name, paused)
    return reached, release
