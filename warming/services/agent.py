"""The engagement agent (docs/warming.md#the-engagement-agent): on the recipient's side of each
warm-up message, after a human-like delay, it logs in over IMAP, finds the message by its tag,
rescues it from spam, reads it after a dwell time, sometimes flags it, answers some in the same
thread and files it away. Every action is an event of the sender's domain.

A message moves through steps (warming.models.Step): planned -> find -> read -> done, or missing
(never found after every retry), failed (the sending side gave up) or unread (a recipient the
agent cannot log in to). Each step is claimed with a lease, so two workers never handle one
message, and each action is recorded once (events by a key per message and kind; a reply by
its row), so a pass cut short is simply repeated.
"""

import logging
import random
import smtplib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Q, Subquery
from django.db.models.functions import Substr
from django.utils import timezone

from config.errors import ApplicationError
from config.mailstore import embedded_mx, embedded_seed, platform_imap_spec
from reputation.core.scores import scores_recompute
from reputation.models import EventKind
from reputation.services.events import event_record
from sending.connection_test import (
    ConnectionProblem,
    ConnectionResult,
    ServerSpec,
    imap_connect,
    smtp_connect,
)
from sending.mime import Outgoing, mime_build
from sending.models import ConnectionType, Mailbox, Message, MessageKind, MessageState
from sending.models import message_token_new as token_new
from sending.services.connection import mailbox_server_spec
from sending.services.dkim_observed import domain_dkim_observe
from sending.services.outbound import MessageDraft, messages_reserve
from warming.content import compose, compose_reply, warmup_code, warmup_headers
from warming.imap import Found, ImapFailure, WarmupMailbox
from warming.models import GoldenSeed, Placement, Step, WarmupSend, WarmupSettings

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)
# Minutes between looks for a message not in the mailbox yet; after the last it is missing.
MISSING_RETRIES = (5, 15, 45)
SEED_SEND_TRIES = 3
FLAG_SHARE = 0.12  # read messages also flagged important
LOGIN_BACKOFF = timedelta(minutes=5)
LOGIN_BACKOFF_MAX = timedelta(hours=1)
NOT_SENT = (MessageState.FAILED, MessageState.BOUNCED)
SENT = (MessageState.HANDED_OVER, MessageState.DELIVERED)


@dataclass
class AgentRun:
    """What one pass of the agent did."""

    promoted: int = 0  # handed over, now waiting for the recipient's look
    not_sent: int = 0
    seeds_sent: int = 0
    found: int = 0
    rescued: int = 0
    read: int = 0
    replied: int = 0
    missing: int = 0
    unread: int = 0
    login_failures: int = 0
    domains: set[int] = field(default_factory=set)

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if isinstance(v, int)}


def engage_delay(rng: random.Random) -> timedelta:
    low, high = settings.WARMUP_ENGAGE_DELAY_MINUTES
    return timedelta(minutes=rng.uniform(low, max(low, high)))


def _dwell(rng: random.Random) -> timedelta:
    low, high = settings.WARMUP_DWELL_SECONDS
    return timedelta(seconds=rng.uniform(low, max(low, high)))


def _rng(send: WarmupSend, purpose: str) -> random.Random:
    return random.Random(f"{send.code}:{send.pk}:{purpose}")


# --- The run --------------------------------------------------------------------------------


def warming_engage(*, now: datetime | None = None, limit: int | None = None) -> AgentRun:
    """One pass: settle what was sent, send the seeds' due messages, then handle every message
    whose look is due, one IMAP session per recipient."""
    now = now or timezone.now()
    run = AgentRun()
    _settle_sent(now, run)
    _seeds_send(now, run)
    for sends in _claim_due(now, limit or settings.WARMUP_AGENT_BATCH):
        _engage_recipient(sends, now, run)
    if run.domains:
        scores_recompute(domain_ids=sorted(run.domains))
    return run


def _settle_sent(now: datetime, run: AgentRun) -> None:
    """Planned messages the outbound path handed over wait for the recipient's look; those it
    gave up on are not sent (with its reason). Only messages whose send time has come are
    looked at (by the send-time index), not the rest of the day's plan."""
    due = WarmupSend.objects.filter(step=Step.PLANNED, send_at__lte=now)
    run.promoted = due.filter(message__state__in=SENT).update(step=Step.FIND)
    reason = Message.objects.filter(pk=OuterRef("message_id")).values("last_error")[:1]
    run.not_sent = due.filter(message__state__in=NOT_SENT).update(
        step=Step.FAILED, last_error=Substr(Subquery(reason), 1, 300)
    )
    run.not_sent += due.filter(sender__isnull=False, message__isnull=True).update(
        step=Step.FAILED, last_error="The message was removed before it was sent."
    )


def _claim_due(now: datetime, limit: int) -> Iterator[list[WarmupSend]]:
    """Due messages, claimed for this pass (a lease), grouped by recipient."""
    with transaction.atomic():
        ids = list(
            WarmupSend.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(step__in=[Step.FIND, Step.READ], engage_at__lte=now)
            .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - LEASE))
            .exclude(recipient__warmup__agent_retry_at__gt=now)
            .exclude(recipient_seed__agent_retry_at__gt=now)
            .order_by("engage_at", "pk")
            .values_list("pk", flat=True)[:limit]
        )
        WarmupSend.objects.filter(pk__in=ids).update(claimed_at=now)
    groups: dict[str, list[WarmupSend]] = defaultdict(list)
    sends = (
        WarmupSend.objects.filter(pk__in=ids)
        .select_related(
            "sender__domain",
            "sender_seed",
            "recipient__domain",
            "recipient__warmup",
            "recipient_seed",
            "message",
        )
        .order_by("engage_at", "pk")
    )
    for send in sends:
        groups[
            f"m{send.recipient_id}" if send.recipient_id else f"s{send.recipient_seed_id}"
        ].append(send)
    yield from groups.values()


# --- One recipient mailbox -----------------------------------------------------------------


@dataclass(frozen=True)
class _Login:
    spec: ServerSpec
    ca_file: str
    allow_private: bool


def _seed_spec(seed: GoldenSeed, prefix: str) -> ServerSpec | None:
    """The seed's own SMTP or IMAP server, or None when it has none."""
    return mailbox_server_spec(seed, prefix) if getattr(seed, f"{prefix}_host") else None


def _imap_login(send: WarmupSend) -> _Login | None:
    """How the agent logs in to the recipient of `send`, or None if it cannot."""
    mailbox = send.recipient
    if mailbox is not None:
        if mailbox.connection == ConnectionType.EXTERNAL:
            return _Login(
                mailbox_server_spec(mailbox, "imap"),
                settings.MAILBOX_TLS_CA_FILE,
                settings.MAILBOX_ALLOW_PRIVATE_HOSTS,
            )
        spec = platform_imap_spec(mailbox.address)
        return _Login(spec, settings.INBOUND_IMAP_CA_FILE, True) if spec else None
    seed = send.recipient_seed
    assert seed is not None
    spec = _seed_spec(seed, "imap")
    if spec is None and embedded_seed(seed.address):
        spec = platform_imap_spec(seed.address)
    return _Login(spec, settings.MAILBOX_TLS_CA_FILE, True) if spec else None


class NoLogin(Exception):
    """The agent cannot log in to a recipient: `reason` says why, for its owner."""

    def __init__(self, reason: str, retry_at: datetime | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_at = retry_at


def mailbox_session(send: WarmupSend, now: datetime) -> WarmupMailbox:
    """A logged-in IMAP session on the recipient of `send`; raises NoLogin (a failed login
    also pauses the recipient's warming until its retry time)."""
    login = _imap_login(send)
    if login is None:
        raise NoLogin("The agent has no way to log in to this recipient's mailbox.", None)
    try:
        client = imap_connect(
            login.spec,
            timeout=settings.MAILBOX_CONNECT_TIMEOUT_SECONDS,
            ca_file=login.ca_file,
            allow_private=login.allow_private,
        )
    except ConnectionProblem as problem:
        retry_at = _login_failed(send, problem.result, now)
        raise NoLogin(_login_reason(problem.result), retry_at) from problem
    _login_worked(send)
    return WarmupMailbox(client)


def _engage_recipient(sends: list[WarmupSend], now: datetime, run: AgentRun) -> None:
    ids = [s.pk for s in sends]
    try:
        box = mailbox_session(sends[0], now)
    except NoLogin as failure:
        if failure.retry_at is None:
            WarmupSend.objects.filter(pk__in=ids).update(
                step=Step.UNREAD, claimed_at=None, last_error=failure.reason
            )
            run.unread += len(sends)
        else:
            run.login_failures += 1
            WarmupSend.objects.filter(pk__in=ids).update(
                claimed_at=None, engage_at=failure.retry_at
            )
        return
    try:
        for index, send in enumerate(sends):
            try:
                engage_one(box, send, now, run)
            except ImapFailure as failure:
                # The session broke: what is left waits for the next pass.
                logger.info("warm-up agent: %s", failure)
                WarmupSend.objects.filter(pk__in=ids[index:]).update(
                    claimed_at=None,
                    engage_at=now + LOGIN_BACKOFF,
                    last_error=str(failure)[:300],
                )
                return
    finally:
        box.close()


def _login_reason(result: ConnectionResult) -> str:
    hints = {
        "auth_failed": "check the IMAP username and password on the mailbox page",
        "tls_error": "check the IMAP security setting and the server's certificate",
        "refused": "check the IMAP host and port, or whether the server is up",
        "timeout": "check the IMAP host, port and security setting",
        "host_not_found": "check the IMAP host name",
        "oauth_revoked": "reconnect the mailbox with its provider on its page",
    }
    hint = hints.get(result.reason, "we retry automatically")
    return f"{result.message} ({hint})"[:300]


def _login_failed(send: WarmupSend, result: ConnectionResult, now: datetime) -> datetime:
    """Pause the recipient's warming with the reason and set the next try (backing off)."""
    reason = _login_reason(result)
    if send.recipient is not None:
        with transaction.atomic():
            settings_row, _ = WarmupSettings.objects.select_for_update().get_or_create(
                mailbox=send.recipient,
                defaults={"started_on": timezone.localdate(send.recipient.created_at)},
            )
            settings_row.agent_failures += 1
            retry_at = now + min(
                LOGIN_BACKOFF * 2 ** (settings_row.agent_failures - 1), LOGIN_BACKOFF_MAX
            )
            settings_row.agent_error = reason
            settings_row.agent_retry_at = retry_at
            settings_row.save(update_fields=["agent_failures", "agent_error", "agent_retry_at"])
        return retry_at
    seed = send.recipient_seed
    assert seed is not None
    retry_at = now + LOGIN_BACKOFF_MAX
    GoldenSeed.objects.filter(pk=seed.pk).update(agent_error=reason, agent_retry_at=retry_at)
    return retry_at


def _login_worked(send: WarmupSend) -> None:
    if send.recipient is not None:
        WarmupSettings.objects.filter(mailbox=send.recipient).exclude(agent_error="").update(
            agent_error="", agent_failures=0, agent_retry_at=None
        )
    elif send.recipient_seed is not None and send.recipient_seed.agent_error:
        GoldenSeed.objects.filter(pk=send.recipient_seed.pk).update(
            agent_error="", agent_retry_at=None
        )


# --- One message ----------------------------------------------------------------------------


def engage_one(
    box: WarmupMailbox, send: WarmupSend, now: datetime, run: AgentRun, *, dwell: bool = True
) -> None:
    """Take `send` one step on (find, then read), or both when no dwell time applies."""
    if send.step == Step.FIND:
        found = box.find(send.code)
        if found is None:
            _not_found(send, now, run)
            return
        if found.kind == "archive":  # filed by a pass that was cut short before recording it
            _finish(send, placement=send.placement or Placement.INBOX)
            return
        _observe_dkim(send, box, found)
        landed = found.kind == "junk"
        if landed:
            _event(send, EventKind.LANDED_IN_SPAM, run)
            found = box.rescue(found, send.code)
            _event(send, EventKind.RESCUED, run)
            run.rescued += 1
        run.found += 1
        send.placement = Placement.SPAM if landed else Placement.INBOX
        send.rescued = landed
        send.found_in = found.folder[:120]
        send.step = Step.READ
        send.attempts = 0
        send.engage_at = now + _dwell(_rng(send, "dwell")) if dwell else now
        send.last_error = ""
        if send.engage_at > now:
            send.claimed_at = None
            send.save(
                update_fields=[
                    "placement", "rescued", "found_in", "step", "attempts", "engage_at",
                    "last_error", "claimed_at",
                ]
            )  # fmt: skip
            return
    _read(box, send, now, run)


def _not_found(send: WarmupSend, now: datetime, run: AgentRun) -> None:
    send.attempts += 1
    send.claimed_at = None
    if send.attempts > len(MISSING_RETRIES):
        send.step = Step.MISSING
        send.placement = Placement.MISSING
        send.last_error = "Not in the inbox, the spam folder or the archive after every retry."
        run.missing += 1
    else:
        send.engage_at = now + timedelta(minutes=MISSING_RETRIES[send.attempts - 1])
        send.last_error = "Not in the mailbox yet; looking again later."
    send.save(
        update_fields=["attempts", "claimed_at", "step", "placement", "last_error", "engage_at"]
    )


def _read(box: WarmupMailbox, send: WarmupSend, now: datetime, run: AgentRun) -> None:
    found = box.find(send.code)
    if found is None or found.kind == "archive":
        # Filed already, or the mailbox's owner moved or deleted it meanwhile: nothing to do.
        _finish(send, placement=send.placement or Placement.INBOX)
        return
    if found.kind == "junk":  # put back by a filter since the rescue
        found = box.rescue(found, send.code)
    rng = _rng(send, "read")
    flag = rng.random() < FLAG_SHARE
    box.read(found, flag=flag)
    _event(send, EventKind.OPENED, run)
    run.read += 1
    send.read_at = now
    send.flagged = flag
    if send.will_reply and not send.replies.exists() and _reply(send, box.fetch(found), now):
        _event(send, EventKind.REPLIED, run)
        send.replied_at = now
        run.replied += 1
    box.file_away(found)
    send.filed_at = now
    _finish(send, placement=send.placement or Placement.INBOX)


def _finish(send: WarmupSend, *, placement: str) -> None:
    send.step = Step.DONE
    send.placement = placement
    send.claimed_at = None
    send.save(
        update_fields=[
            "step", "placement", "claimed_at", "read_at", "flagged", "replied_at", "filed_at",
            "last_error", "rescued", "found_in", "attempts", "engage_at", "by_hand",
            "will_reply",
        ]
    )  # fmt: skip


def _event(send: WarmupSend, kind: str, run: AgentRun) -> None:
    """The action as an event of the sender's domain (a seed's own messages are not scored)."""
    sender = send.sender
    if sender is None:
        return
    event_record(
        domain=sender.domain,
        kind=kind,
        source_key=f"warmup:{send.pk}:{kind}",
        mailbox=sender,
        recipient=_address(send.recipient, send.recipient_seed),
        message_id=send.message.message_id if send.message else send.sent_message_id,
        message_kind=MessageKind.WARMUP,
        rescore=False,
    )
    run.domains.add(sender.domain_id)


def _observe_dkim(send: WarmupSend, box: WarmupMailbox, found: Found) -> None:
    """Confirm the DKIM of a domain that sends through its own servers from what arrived."""
    sender = send.sender
    if sender is None or not sender.domain.dkim_pending:
        return
    domain_dkim_observe(domain=sender.domain, raw_message=box.fetch(found))


def _address(mailbox: Mailbox | None, seed: GoldenSeed | None) -> str:
    if mailbox is not None:
        return mailbox.address
    return seed.address if seed is not None else ""


def _name(mailbox: Mailbox | None, seed: GoldenSeed | None) -> str:
    if mailbox is not None:
        return mailbox.display_name
    return seed.display_name if seed is not None else ""


# --- Replies ------------------------------------------------------------------------------


def _text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        return ""
    try:
        return str(part.get_content())
    except (LookupError, ValueError):
        return ""


MAX_THREAD = 10


def _thread(send: WarmupSend) -> list[str]:
    """The Message-IDs of the thread up to `send`, oldest first, from our own records: the
    headers of a received message are not trusted for threading."""
    ids, current = [send.sent_message_id], send.parent_id
    while current is not None and len(ids) < MAX_THREAD:
        sent_id, current = WarmupSend.objects.filter(pk=current).values_list(
            "sent_message_id", "parent_id"
        )[0]
        ids.append(sent_id)
    return [f"<{mid}>" for mid in reversed(ids) if mid]


def _reply(send: WarmupSend, raw: bytes, now: datetime) -> bool:
    """Answer `send` in its thread, from its recipient to its sender; False if the recipient
    cannot send now (the reply is simply not written)."""
    original = message_from_bytes(raw, policy=policy.default)
    assert isinstance(original, EmailMessage)
    thread = _thread(send)
    try:
        quoted_on = parsedate_to_datetime(str(original.get("Date", "")))
    except (TypeError, ValueError):
        quoted_on = None
    rng = _rng(send, "reply")
    code = warmup_code(rng)
    draft = compose_reply(
        rng,
        original_subject=send.subject or str(original.get("Subject", "")),
        sender_name=_name(send.recipient, send.recipient_seed),
        recipient_name=_name(send.sender, send.sender_seed),
        code=code,
        depth=max(0, len(thread) - 1),
        quote=_text_of(original),
        quoted_on=quoted_on,
    )
    headers = warmup_headers(code)
    if thread:
        headers |= {"In-Reply-To": thread[-1], "References": " ".join(thread)}
    reply = WarmupSend(
        day=timezone.localdate(now),
        parent=send,
        sender=send.recipient,
        sender_seed=send.recipient_seed,
        recipient=send.sender,
        recipient_seed=send.sender_seed,
        cluster=send.cluster,
        send_at=now,
        code=code,
        subject=draft.subject[:300],
        engage_at=now + engage_delay(rng),
    )
    if send.recipient is not None:
        try:
            with transaction.atomic():
                (message,) = messages_reserve(
                    drafts=[
                        MessageDraft(
                            mailbox=send.recipient,
                            kind=MessageKind.WARMUP,
                            recipient=_address(send.sender, send.sender_seed),
                            recipient_name=_name(send.sender, send.sender_seed),
                            subject=draft.subject,
                            text_body=draft.text_body,
                            campaign_ref=f"warmup-{reply.day.isoformat()}",
                            headers=headers,
                        )
                    ],
                    now=now,
                )
                reply.message = message
                reply.sent_message_id = message.message_id
                reply.save()
        except ApplicationError as refusal:
            send.last_error = f"Not answered: {refusal.message}"[:300]
            return False
        return True
    seed = send.recipient_seed
    assert seed is not None
    problem = _seed_deliver(seed, reply, draft.subject, draft.text_body, headers, now)
    if problem:
        send.last_error = f"Not answered: {problem}"[:300]
        return False
    reply.save()
    return True


# --- Golden seeds' own messages -------------------------------------------------------------


def _seed_deliver(
    seed: GoldenSeed,
    send: WarmupSend,
    subject: str,
    text: str,
    headers: dict[str, str],
    now: datetime,
) -> str:
    """Send one message from a seed through its own SMTP server; "" or the reason it failed.
    On success `send` is marked sent (not saved)."""
    spec = _seed_spec(seed, "smtp")
    mx = embedded_mx() if spec is None and embedded_seed(seed.address) else None
    if mx is not None:
        spec = ServerSpec(host=mx[0], port=mx[1], security="none", username="", password="")
    if spec is None:
        return "the seed has no SMTP server configured"
    recipient = _address(send.recipient, send.recipient_seed)
    outgoing = Outgoing(
        message_id=f"{token_new()}@{seed.address.rsplit('@', 1)[-1]}",
        sender=seed.address,
        sender_name=seed.display_name,
        recipient=recipient,
        recipient_name=_name(send.recipient, send.recipient_seed),
        subject=subject,
        text_body=text,
        tenant="seed",
        kind=MessageKind.WARMUP,
        headers=headers,
    )
    try:
        client = smtp_connect(
            spec,
            timeout=settings.MAILBOX_CONNECT_TIMEOUT_SECONDS,
            ca_file=settings.MAILBOX_TLS_CA_FILE,
            allow_private=True,
        )
    except ConnectionProblem as problem:
        return problem.result.message
    try:
        client.sendmail(
            seed.address, [recipient], mime_build(outgoing, date=now, routing_headers=False)
        )
    except smtplib.SMTPException as error:
        return f"the seed's SMTP server refused the message: {error}"[:300]
    except OSError as error:
        return f"the seed's SMTP connection failed: {error}"[:300]
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()
    send.sent_at = now
    send.sent_message_id = outgoing.message_id
    send.step = Step.FIND
    return ""


def _seeds_send(now: datetime, run: AgentRun) -> None:
    """The seeds' planned first messages whose time has come."""
    due = (
        WarmupSend.objects.filter(step=Step.PLANNED, sender_seed__isnull=False, send_at__lte=now)
        .select_related("sender_seed", "recipient__domain", "recipient_seed")
        .order_by("send_at")[: settings.WARMUP_AGENT_BATCH]
    )
    for send in due:
        seed = send.sender_seed
        assert seed is not None
        rng = _rng(send, "compose")
        draft = compose(
            rng,
            sender_name=seed.display_name,
            recipient_name=_name(send.recipient, send.recipient_seed),
            code=send.code,
        )
        send.subject = draft.subject[:300]
        problem = _seed_deliver(
            seed, send, draft.subject, draft.text_body, warmup_headers(send.code), now
        )
        if problem:
            send.attempts += 1
            send.last_error = problem[:300]
            if send.attempts >= SEED_SEND_TRIES:
                send.step = Step.FAILED
            else:
                send.send_at = now + LOGIN_BACKOFF * send.attempts
        else:
            run.seeds_sent += 1
            send.attempts = 0
        send.save(
            update_fields=[
                "subject", "sent_at", "sent_message_id", "step", "attempts", "last_error",
                "send_at",
            ]
        )  # fmt: skip
