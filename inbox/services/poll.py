"""Reading replies from the sending mailboxes over IMAP (docs/replies.md).

Each mailbox has one `MailboxPoll` row. A poll claims it with a conditional update (a claim
still running is left alone), logs in, selects INBOX and reads the messages whose UID is above
the last one read, in UID order, a capped number per poll. A message is stored as a `Reply`
only when it answers something this mailbox's workspace sent (In-Reply-To / References, the
original Message-ID inside a delivery notice, or a signed unsubscribe token); anything else is
ignored. `last_uid` moves on only in the transaction that stored the batch's replies, and a
changed UIDVALIDITY starts the folder again from the beginning (the replies already stored are
unique per mailbox and Message-ID, so nothing is counted twice). IMAP failures are written on
the poll row with a backoff; they never escape the tick.
"""

import contextlib
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import Message as EmailMessage

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from campaigns.models import CampaignLead, CampaignSend, Lead
from campaigns.services.unsubscribe import campaign_lead_from_token
from config.celery import task_enqueue
from config.errors import ApplicationError
from config.mailstore import platform_imap_spec
from inbox.classify import (
    BOUNCE,
    UNSUBSCRIBE,
    Classification,
    body_text,
    classify,
    header_text,
    message_date,
    message_ids,
    own_text,
    sender_of,
)
from inbox.models import MailboxPoll, Reply
from inbox.services.effects import reply_effects_apply
from sending.connection_test import ConnectionProblem, ServerSpec, imap_connect
from sending.models import ConnectionType, Mailbox, Message, MessageKind
from sending.services.connection import mailbox_server_spec
from warming.imap import IMAP_ERRORS

logger = logging.getLogger(__name__)

POLL_TASK = "inbox.tasks.mailbox_replies_poll"
CLAIM = timedelta(minutes=10)  # a poll still holding its claim after this is taken as dead
POLL_EVERY = timedelta(minutes=2)
BACKOFF_FIRST = timedelta(minutes=2)
BACKOFF_MAX = timedelta(hours=2)
PER_POLL = 200  # messages read per poll at most; the rest wait for the next one
FETCH_BATCH = 25
MESSAGE_MAX_BYTES = 2_000_000  # bigger messages: their headers and the start of the text
TEXT_KEPT = 10_000
DUE_PER_TICK = 500
# Replies answer campaign messages and messages sent from the inbox; never warm-up mail.
ANSWERABLE = (MessageKind.CAMPAIGN, MessageKind.REPLY)


@dataclass
class PollResult:
    claimed: bool = False
    read: int = 0
    stored: int = 0
    ignored: int = 0
    error: str = ""
    kinds: dict[str, int] = field(default_factory=dict)


# --- Claiming ------------------------------------------------------------------------------------


def _poll_row(mailbox_id: int) -> MailboxPoll:
    try:
        with transaction.atomic():
            row, _ = MailboxPoll.objects.get_or_create(mailbox_id=mailbox_id)
    except IntegrityError:  # created by a racing poll meanwhile
        row = MailboxPoll.objects.get(mailbox_id=mailbox_id)
    return row


def _claim(mailbox_id: int, now: datetime) -> MailboxPoll | None:
    """The poll row, claimed for this poll; None when another poll holds it."""
    row = _poll_row(mailbox_id)
    taken = (
        MailboxPoll.objects.filter(pk=row.pk)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
        .update(claimed_until=now + CLAIM)
    )
    if taken != 1:
        return None
    row.refresh_from_db()
    return row


def _finish(row: MailboxPoll, now: datetime, error: str = "") -> None:
    if error:
        failures = row.failures + 1
        wait = min(BACKOFF_FIRST * 2 ** (failures - 1), BACKOFF_MAX)
        MailboxPoll.objects.filter(pk=row.pk).update(
            claimed_until=None,
            last_polled_at=now,
            last_error=error[:1000],
            failures=failures,
            next_poll_at=now + wait,
        )
        return
    MailboxPoll.objects.filter(pk=row.pk).update(
        claimed_until=None,
        last_polled_at=now,
        last_error="",
        failures=0,
        next_poll_at=now + POLL_EVERY,
    )


# --- Logging in ----------------------------------------------------------------------------------


def _login(mailbox: Mailbox) -> tuple[ServerSpec, str, bool] | None:
    """The mailbox's IMAP server and login (spec, CA file, private hosts allowed), or None."""
    if mailbox.connection == ConnectionType.EXTERNAL:
        if not mailbox.imap_host:
            return None
        return (
            mailbox_server_spec(mailbox, "imap"),
            settings.MAILBOX_TLS_CA_FILE,
            settings.MAILBOX_ALLOW_PRIVATE_HOSTS,
        )
    spec = platform_imap_spec(mailbox.address)
    return (spec, settings.INBOUND_IMAP_CA_FILE, True) if spec else None


def _login_reason(problem: ConnectionProblem) -> str:
    result = problem.result
    hints = {
        "auth_failed": "check the IMAP username and password on the mailbox page",
        "tls_error": "check the IMAP security setting and the server's certificate",
        "refused": "check the IMAP host and port, or whether the server is up",
        "timeout": "check the IMAP host, port and security setting",
        "host_not_found": "check the IMAP host name",
        "oauth_revoked": "reconnect the mailbox with its provider on its page",
        "oauth_unavailable": "nothing to do: replies are read again automatically",
        "smtp_auth_disabled": "turn on authenticated SMTP for the mailbox at its provider",
    }
    hint = hints.get(result.reason, "replies are read again automatically")
    return f"Reading replies failed: {result.message} ({hint})"


# --- The poll ------------------------------------------------------------------------------------


def mailbox_replies_poll(*, mailbox_id: int, now: datetime | None = None) -> PollResult:
    """Read the mailbox's new messages and store the replies among them (see the module
    docstring). Safe to run twice at once: the second finds the claim taken and does nothing."""
    now = now or timezone.now()
    result = PollResult()
    mailbox = Mailbox.objects.select_related("domain").filter(pk=mailbox_id).first()
    if mailbox is None:
        return result
    row = _claim(mailbox_id, now)
    if row is None:
        return result
    result.claimed = True
    try:
        _poll(mailbox, row, now, result)
    except Exception as error:  # recorded on the poll row, never raised to the tick
        logger.exception("reply poll of mailbox %s failed", mailbox_id)
        result.error = result.error or f"Reading replies stopped on an unexpected error: {error}"
    finally:
        _finish(row, now, result.error)
    return result


def _poll(mailbox: Mailbox, row: MailboxPoll, now: datetime, result: PollResult) -> None:
    login = _login(mailbox)
    if login is None:
        result.error = "Replies cannot be read: this mailbox has no IMAP server to log in to."
        return
    spec, ca_file, allow_private = login
    try:
        client = imap_connect(
            spec,
            timeout=settings.MAILBOX_CONNECT_TIMEOUT_SECONDS,
            ca_file=ca_file,
            allow_private=allow_private,
        )
    except ConnectionProblem as problem:
        result.error = _login_reason(problem)
        return
    try:
        _read(client, mailbox, row, now, result)
    except IMAP_ERRORS as error:
        result.error = f"Reading replies failed: the IMAP session broke ({error})."
    finally:
        with contextlib.suppress(*IMAP_ERRORS):
            client.logout()


def _read(client, mailbox: Mailbox, row: MailboxPoll, now: datetime, result: PollResult) -> None:
    info = client.select_folder("INBOX", readonly=True)
    validity = int(info.get(b"UIDVALIDITY") or 0)
    last_uid = row.last_uid
    if row.uidvalidity != validity:
        # A new UIDVALIDITY: the old UIDs mean nothing now; read the folder from the start.
        last_uid = 0
        MailboxPoll.objects.filter(pk=row.pk).update(uidvalidity=validity, last_uid=0)
        row.uidvalidity, row.last_uid = validity, 0
    uids = sorted(int(uid) for uid in client.search(["UID", f"{last_uid + 1}:*"]))
    uids = [uid for uid in uids if uid > last_uid][:PER_POLL]
    for start in range(0, len(uids), FETCH_BATCH):
        batch = uids[start : start + FETCH_BATCH]
        raws = _fetch(client, batch)
        with transaction.atomic():
            for uid in batch:
                raw = raws.get(uid)
                result.read += 1
                if raw is None:
                    result.ignored += 1
                    continue
                try:
                    stored = reply_record(mailbox=mailbox, raw=raw, uid=uid, now=now)
                except Exception:  # one bad message must not stop the mailbox
                    logger.exception("reply poll: message %s of mailbox %s", uid, mailbox.pk)
                    stored = None
                if stored is None:
                    result.ignored += 1
                else:
                    result.stored += 1
                    result.kinds[stored.kind] = result.kinds.get(stored.kind, 0) + 1
            # The UIDs move on only with the replies they produced.
            MailboxPoll.objects.filter(pk=row.pk).update(last_uid=batch[-1])


def _fetch(client, uids: list[int]) -> dict[int, bytes]:
    sizes = client.fetch(uids, ["RFC822.SIZE"])
    small = [
        uid for uid in uids if int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0)) <= MESSAGE_MAX_BYTES
    ]
    large = [uid for uid in uids if uid not in small]
    raws: dict[int, bytes] = {}
    if small:
        for uid, item in client.fetch(small, ["BODY.PEEK[]"]).items():
            body = item.get(b"BODY[]")
            if isinstance(body, bytes):
                raws[int(uid)] = body
    if large:
        wanted = ["BODY.PEEK[HEADER]", "BODY.PEEK[TEXT]<0.200000>"]
        for uid, item in client.fetch(large, wanted).items():
            header = item.get(b"BODY[HEADER]")
            text = item.get(b"BODY[TEXT]<0>")
            if isinstance(header, bytes):
                raws[int(uid)] = header + (text if isinstance(text, bytes) else b"")
    return raws


# --- Matching and storing ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Match:
    message: Message
    campaign_lead: CampaignLead | None
    lead: Lead | None


def _sent_by_workspace(workspace_id: int, ids: list[str]) -> Message | None:
    """The first of `ids` that names a message this workspace sent (campaign or inbox reply),
    preferring a campaign message."""
    if not ids:
        return None
    found = {
        m.message_id: m
        for m in Message.objects.select_related("domain", "mailbox").filter(
            workspace_id=workspace_id, message_id__in=ids[:50], kind__in=ANSWERABLE
        )
    }
    ordered = [found[i] for i in ids if i in found]
    campaign = [m for m in ordered if m.kind == MessageKind.CAMPAIGN]
    chosen = campaign or ordered
    return chosen[0] if chosen else None


def _thread_of(message: Message) -> tuple[CampaignLead | None, Lead | None]:
    send = (
        CampaignSend.objects.select_related("campaign_lead__lead", "campaign_lead__campaign")
        .filter(message=message)
        .first()
    )
    if send is not None:
        return send.campaign_lead, send.campaign_lead.lead
    lead = Lead.objects.filter(
        workspace_id=message.workspace_id, email=message.recipient.lower()
    ).first()
    return None, lead


def _match(mailbox: Mailbox, found: Classification) -> _Match | None:
    workspace_id = mailbox.domain.workspace_id
    if found.kind == UNSUBSCRIBE and found.unsubscribe_token:
        return _token_match(workspace_id, found.unsubscribe_token)
    ids = list(found.answers)
    if found.kind == BOUNCE and found.bounce is not None:
        original = found.bounce.original_message_id
        ids = [original, *ids] if original else ids
    message = _sent_by_workspace(workspace_id, ids)
    if message is None:
        return None
    bounce = found.bounce if found.kind == BOUNCE else None
    if bounce is not None and bounce.recipient and bounce.recipient != message.recipient.lower():
        return None  # a notice about someone this message was not sent to
    campaign_lead, lead = _thread_of(message)
    return _Match(message, campaign_lead, lead)


def _token_match(workspace_id: int, token: str) -> _Match | None:
    """The signed token of a mailto unsubscribe names its campaign lead; only this workspace's."""
    try:
        campaign_lead = campaign_lead_from_token(token=token)
    except ApplicationError:
        return None
    if campaign_lead.campaign.workspace_id != workspace_id:
        return None
    send = (
        CampaignSend.objects.select_related("message__domain", "message__mailbox")
        .filter(campaign_lead=campaign_lead, message__isnull=False)
        .order_by("-id")
        .first()
    )
    if send is None or send.message is None:
        return None
    return _Match(send.message, campaign_lead, campaign_lead.lead)


def _own_id(parsed: EmailMessage, raw: bytes) -> str:
    ids = message_ids(header_text(parsed, "Message-ID"))
    if ids:
        return ids[0][:255]
    # No Message-ID: the content stands in, so a re-read still finds the same reply.
    return "sha256:" + hashlib.sha256(raw).hexdigest()


@transaction.atomic
def reply_record(*, mailbox: Mailbox, raw: bytes, uid: int | None, now: datetime) -> Reply | None:
    """Store one message read from `mailbox` as a reply, and apply what it means, if it answers
    something the mailbox's workspace sent; None when it answers nothing of ours or was stored
    before."""
    parsed = message_from_bytes(raw)
    found = classify(parsed)
    match = _match(mailbox, found)
    if match is None:
        return None
    own_id = _own_id(parsed, raw)
    if Reply.objects.filter(mailbox=mailbox, message_id=own_id).exists():
        return None
    sent = message_date(parsed)
    received_at = sent if sent is not None and sent <= now + timedelta(hours=1) else now
    name, address = sender_of(parsed)
    campaign_lead = match.campaign_lead
    try:
        with transaction.atomic():
            reply = Reply.objects.create(
                workspace_id=mailbox.domain.workspace_id,
                mailbox=mailbox,
                in_reply_to=match.message,
                campaign=campaign_lead.campaign if campaign_lead else None,
                campaign_lead=campaign_lead,
                lead=match.lead,
                kind=found.kind,
                from_address=address[:320],
                from_name=name[:200],
                subject=header_text(parsed, "Subject")[:500],
                text=own_text(body_text(parsed))[:TEXT_KEPT],
                message_id=own_id,
                received_at=received_at,
                imap_uid=uid,
                returns_on=found.returns_on,
                bounce_hard=bool(found.bounce and found.bounce.hard),
                created_at=now,
            )
    except IntegrityError:
        return None  # stored by a racing poll
    reply_effects_apply(reply=reply, classification=found)
    return reply


# --- The tick ------------------------------------------------------------------------------------


def replies_poll_due(*, now: datetime | None = None) -> int:
    """Queue a poll for each mailbox whose poll is due (one task per mailbox); returns how many.

    Every mailbox a campaign sends from gets a poll row on the first tick."""
    now = now or timezone.now()
    missing = (
        Mailbox.objects.filter(campaigns__isnull=False, reply_poll__isnull=True)
        .values_list("pk", flat=True)
        .distinct()
    )
    MailboxPoll.objects.bulk_create(
        [MailboxPoll(mailbox_id=pk, next_poll_at=now) for pk in missing], ignore_conflicts=True
    )
    due = list(
        MailboxPoll.objects.filter(next_poll_at__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
        .order_by("next_poll_at")
        .values_list("mailbox_id", flat=True)[:DUE_PER_TICK]
    )
    for mailbox_id in due:
        task_enqueue(POLL_TASK, mailbox_id)
    return len(due)
