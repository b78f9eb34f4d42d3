"""Small, realistic KumoMTA log records for tests."""

import itertools
import time

_ids = itertools.count(1)


def record(
    kind: str,
    domain,
    recipient: str,
    *,
    sender: str = "alex",
    at: float | None = None,
    message_id: str | None = None,
    attempt: int = 1,
    **extra,
) -> dict:
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
    kind: str = "campaign",
    sender: str = "alex",
) -> dict:
    at = time.time()
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
                "tenant": domain.public_id,
                "recipient": recipient,
                "id": message_id,
                "kind": kind,
            },
        },
    }


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
