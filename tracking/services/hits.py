"""Opens and clicks as they arrive from the internet, trusted only as far as the signed token
and the stored links go.

Every valid hit is kept (Open, Click) with its user agent, a keyed hash of the client address
and whether a machine made it. The first human open of a message, and the first human click on
each of its links, become one event for the trust score; machine hits never do."""

import hashlib
import hmac
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import ApplicationError
from reputation.models import EventKind
from reputation.services.events import event_record
from sending.models import Message, MessageState
from tracking.machine import Verdict, open_verdict
from tracking.models import Click, Open, TrackedLink
from tracking.services.tokens import TokenRefused, click_token_read, open_token_read

USER_AGENT_CHARS = 300


def client_hash(ip: str) -> str:
    """A keyed hash of the client's address: repeat visits can be told apart, the address
    itself is not kept."""
    if not ip:
        return ""
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, b"tracking-ip:" + ip.encode(), hashlib.sha256).hexdigest()[:32]


def _delivered_at(message: Message) -> datetime | None:
    if message.state == MessageState.DELIVERED and message.finished_at:
        return message.finished_at
    return message.handed_over_at


def _verdict(message: Message, user_agent: str, ip: str | None, now: datetime) -> Verdict:
    delivered = _delivered_at(message)
    if delivered is None:
        # Only the sent message carries the token: a hit before it left is no reader's.
        return Verdict(True, "before the message was sent")
    return open_verdict(
        user_agent=user_agent, seconds_since_delivery=(now - delivered).total_seconds(), ip=ip
    )


def _event(message: Message, kind: str, source_key: str, now: datetime, detail: str) -> None:
    mailbox = (
        message.mailbox
        if message.mailbox and message.mailbox.domain_id == message.domain_id
        else None
    )
    event_record(
        domain=message.domain,
        kind=kind,
        source_key=source_key,
        mailbox=mailbox,
        recipient=message.recipient,
        message_id=message.mta_id,
        message_kind=message.kind,
        occurred_at=now,
        detail=detail,
        # The hourly recompute takes it in; a pixel request does not wait for a rescore.
        rescore=False,
        outbound=message,
    )


def _message(pk: int) -> Message | None:
    return Message.objects.select_related("domain", "mailbox").filter(pk=pk).first()


@transaction.atomic
def open_record(
    *, token: str, user_agent: str, ip: str, now: datetime | None = None
) -> Open | None:
    """Record one fetch of an open pixel; None (nothing recorded) for a refused token."""
    now = now or timezone.now()
    try:
        message_pk = open_token_read(token)
    except TokenRefused:
        return None
    message = _message(message_pk)
    if message is None:
        return None
    verdict = _verdict(message, user_agent, ip, now)
    hit = Open.objects.create(
        message=message,
        at=now,
        user_agent=user_agent[:USER_AGENT_CHARS],
        ip_hash=client_hash(ip),
        machine=verdict.machine,
        machine_reason=verdict.reason[:80],
    )
    if not verdict.machine:
        _event(message, EventKind.OPENED, f"open:{message.pk}", now, "Opened (tracking pixel)")
    return hit


@transaction.atomic
def click_record(
    *, token: str, user_agent: str, ip: str, now: datetime | None = None, record: bool = True
) -> str:
    """The URL a click token leads to (one the message carried), with the click recorded
    unless `record` is off (rate limited); a refused token or unknown link is refused."""
    now = now or timezone.now()
    refused = ApplicationError(
        "This link is not valid or has expired. Copy the whole link from the email.",
        code="invalid_link",
        status=404,
    )
    try:
        target = click_token_read(token)
    except TokenRefused as error:
        raise refused from error
    link = (
        TrackedLink.objects.select_related("message__domain", "message__mailbox")
        .filter(message_id=target.message_id, position=target.position)
        .first()
    )
    if link is None:
        raise refused
    if not record:
        return link.url
    message = link.message
    # Scanners that follow every link are flagged by their agent and their haste; the address
    # rule (proxy networks) is left out, as people browse through some of those networks.
    verdict = _verdict(message, user_agent, None, now)
    Click.objects.create(
        message=message,
        link=link,
        at=now,
        user_agent=user_agent[:USER_AGENT_CHARS],
        ip_hash=client_hash(ip),
        machine=verdict.machine,
        machine_reason=verdict.reason[:80],
    )
    if not verdict.machine:
        _event(
            message,
            EventKind.CLICKED,
            f"click:{message.pk}:{link.position}",
            now,
            f"Clicked {link.url}",
        )
    return link.url
