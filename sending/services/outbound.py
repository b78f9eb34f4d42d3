"""The outbound path: reserve a message, hand it to its transport exactly once, keep the books.

1. `messages_reserve` commits one row per message, with its Message-ID, before anything is sent.
2. `messages_hand_over` claims due rows with a conditional update (committed), hands them to
   their transport in batches and records each result right after its batch.
3. `messages_reconcile` settles hand-overs a dead worker left half done: the MTA's records (linked
   by Message-ID) prove a message went; if they do not, a transport whose next hop drops a
   Message-ID it already has may send again; any other is failed rather than risk a duplicate.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import httpx
import orjson
import redis
from django.conf import settings
from django.db import DatabaseError, connection, models, transaction
from django.db.models import F, Min, Q
from django.utils import timezone

from billing.selectors import external_sending_blocked
from billing.services.entitlements import external_sending_refusal, upgrade_link
from config.celery import task_enqueue
from config.errors import ApplicationError
from inbox.models import Reply
from reputation.core.pool_map import key, kumo_redis
from reputation.models import Event
from reputation.scoring import Tier
from sending.connection_test import ServerSpec
from sending.mime import (
    MessageContentError,
    Outgoing,
    address_check,
    mime_build,
    outgoing_check,
)
from sending.models import (
    ConnectionType,
    DomainStatus,
    Mailbox,
    MailboxStatus,
    Message,
    MessageKind,
    MessageState,
    SendingDomain,
    SuppressedDomain,
    Suppression,
    TransportName,
    message_token_new,
)
from sending.services.connection import mailbox_server_spec
from sending.transports.base import Outcome, SendResult, Transport
from sending.transports.kumo_http import KumoHttpTransport
from sending.transports.smtp import SmtpTransport

logger = logging.getLogger(__name__)

SEND_TASK = "sending.tasks.messages_send"
MESSAGE_KINDS = frozenset(MessageKind.values)
_FIELD_NAMES = [f.attname for f in Message._meta.concrete_fields]
RETRY_BASE_SECONDS = 60
RETRY_MAX_SECONDS = 3600


@dataclass(frozen=True)
class MessageDraft:
    mailbox: Mailbox
    kind: str
    recipient: str
    subject: str
    text_body: str
    html_body: str = ""
    recipient_name: str = ""
    campaign_ref: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    send_at: datetime | None = None


def _platform_transport_name() -> str:
    if settings.OUTBOUND_TRANSPORT == TransportName.SMTP_RELAY:
        return TransportName.SMTP_RELAY
    return TransportName.KUMO_HTTP


def transport_name_for(mailbox: Mailbox) -> str:
    """External mailboxes send through their own server; platform ones through our MTA."""
    if mailbox.connection == ConnectionType.EXTERNAL:
        return TransportName.MAILBOX_SMTP
    return _platform_transport_name()


def _outgoing(message: Message, tenant: str) -> Outgoing:
    return Outgoing(
        key=message.pk or 0,
        message_id=message.message_id,
        sender=message.sender,
        sender_name=message.sender_name,
        recipient=message.recipient,
        recipient_name=message.recipient_name,
        subject=message.subject,
        text_body=message.text_body,
        html_body=message.html_body,
        headers=message.headers,
        tenant=tenant,
        kind=message.kind,
        campaign=message.campaign_ref,
    )


def _recipient(address: str) -> str:
    """The address as the envelope carries it (an international domain as punycode), or as
    given when it is no address at all (the check below then refuses it)."""
    try:
        return address_check(address.strip()).lower()
    except MessageContentError:
        return address.strip().lower()


def messages_reserve(
    *, drafts: Sequence[MessageDraft], now: datetime | None = None, enqueue: bool = True
) -> list[Message]:
    """Commit one message row per draft (each with its own Message-ID) before anything is sent;
    the hand-over is queued after the commit. Refuses the whole batch on any bad draft."""
    now = now or timezone.now()
    rows = []
    for index, draft in enumerate(drafts):
        mailbox, domain = draft.mailbox, draft.mailbox.domain
        where = f"Message {index + 1} ({draft.recipient})" if len(drafts) > 1 else "The message"
        if draft.kind not in MESSAGE_KINDS:
            raise ApplicationError(f"{where}: unknown kind {draft.kind!r}.", code="invalid")
        if not domain.can_send:
            raise ApplicationError(
                f"{where}: {domain.name} cannot send while it is {domain.get_status_display()}.",
                code="domain_cannot_send",
            )
        if mailbox.status != MailboxStatus.ACTIVE:
            raise ApplicationError(
                f"{where}: {mailbox.address} is {mailbox.get_status_display().lower()}.",
                code="mailbox_not_active",
            )
        # Positional, in the model's field order: three times cheaper than keywords, and
        # reserve builds thousands per call.
        values: list[Any] = [
            None,  # id: from the sequence at insert
            domain.workspace_id,
            domain.pk,
            mailbox.pk,
            draft.kind,
            draft.campaign_ref,
            mailbox.address,
            mailbox.display_name,
            _recipient(draft.recipient),
            draft.recipient_name,
            draft.subject,
            draft.text_body,
            draft.html_body,
            dict(draft.headers),
            f"{message_token_new()}@{domain.name}",
            "",  # mta_id
            transport_name_for(mailbox),
            MessageState.RESERVED,
            0,  # attempts
            "",  # last_error
            False,  # maybe_sent
            draft.send_at or now,  # next_attempt_at
            None,  # claimed_at
            None,  # attempt_started_at
            None,  # handed_over_at
            None,  # finished_at
            now,  # created_at
        ]
        message = Message.from_db(None, _FIELD_NAMES, values)
        message._state.adding = True
        try:
            outgoing_check(_outgoing(message, domain.public_id))
        except MessageContentError as error:
            raise ApplicationError(f"{where}: {error}", code="invalid") from error
        rows.append(message)
    _refuse_suppressed(rows)
    _refuse_unpaid_campaigns(rows, drafts)
    _refuse_unprompted_replies(rows)
    with transaction.atomic():
        _insert(rows)
        if enqueue and rows:
            ids = [m.pk for m in rows]
            transaction.on_commit(lambda: task_enqueue(SEND_TASK, ids))
    return rows


def _refuse_unprompted_replies(rows: list[Message]) -> None:
    """A reply from the inbox skips the campaign gates (tier, credits) because someone wrote
    first: so it may only go to an address that did write to that workspace."""
    wanted = {(m.workspace_id, m.recipient) for m in rows if m.kind == MessageKind.REPLY}
    if not wanted:
        return
    wrote = set(
        Reply.objects.filter(
            workspace_id__in={w for w, _ in wanted},
            from_address__in={address for _, address in wanted},
        ).values_list("workspace_id", "from_address")
    )
    for _workspace_id, address in sorted(wanted - wrote):
        raise ApplicationError(
            f"{address} never wrote to this workspace: a reply can only answer someone who did.",
            code="reply_not_prompted",
        )


def _refuse_unpaid_campaigns(rows: list[Message], drafts: Sequence[MessageDraft]) -> None:
    campaign_workspaces = {m.workspace_id for m in rows if m.kind == MessageKind.CAMPAIGN}
    if not campaign_workspaces:
        return
    for workspace_id in external_sending_blocked(workspace_ids=campaign_workspaces):
        workspace = next(
            d.mailbox.domain.workspace
            for d in drafts
            if d.mailbox.domain.workspace_id == workspace_id
        )
        raise ApplicationError(
            external_sending_refusal(workspace=workspace),
            code="external_sending_stopped",
            status=402,
            link=upgrade_link(workspace),
        )


def _insert(rows: list[Message]) -> None:
    """Insert new message rows. On PostgreSQL: ids from the sequence, then one COPY (an INSERT
    of thousands of rows costs more to build than to run)."""
    if connection.vendor != "postgresql" or not rows:
        Message.objects.bulk_create(rows, batch_size=1000)
        return
    table = Message._meta.db_table
    fields = Message._meta.concrete_fields
    json_fields = {f.attname for f in fields if isinstance(f, models.JSONField)}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [table, len(rows)],
        )
        for message, (pk,) in zip(rows, cursor.fetchall(), strict=True):
            message.pk = pk
        columns = ", ".join(connection.ops.quote_name(f.attname) for f in fields)
        with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for message in rows:
                copy.write_row(
                    [
                        orjson.dumps(getattr(message, f.attname)).decode()
                        if f.attname in json_fields
                        else getattr(message, f.attname)
                        for f in fields
                    ]
                )
    for message in rows:
        message._state.adding = False


def _suppressions(pairs: set[tuple[int, str]]) -> dict[tuple[int, str], str]:
    """(workspace, recipient) -> the reason it may not be sent to (the workspace's suppression
    list or the platform's, by address or by the address's whole domain), for the pairs that
    are suppressed; two queries."""
    workspaces = {ws for ws, _ in pairs}
    found = (
        Suppression.objects.filter(address__in={address for _, address in pairs})
        .filter(Q(workspace__isnull=True) | Q(workspace_id__in=workspaces))
        .values_list("workspace_id", "address", "reason")
    )
    listed: dict[tuple[int | None, str], str] = {(ws, a): reason for ws, a, reason in found}
    blocked_domains = (
        SuppressedDomain.objects.filter(
            domain__in={address.rpartition("@")[2] for _, address in pairs}
        )
        .filter(Q(workspace__isnull=True) | Q(workspace_id__in=workspaces))
        .values_list("workspace_id", "domain")
    )
    blocked: set[tuple[int | None, str]] = set(blocked_domains)
    verdicts = {}
    for ws, address in pairs:
        reason = listed.get((ws, address)) or listed.get((None, address))
        domain = address.rpartition("@")[2]
        if not reason and ((ws, domain) in blocked or (None, domain) in blocked):
            reason = f"domain_blocked ({domain})"
        if reason:
            verdicts[(ws, address)] = reason
    return verdicts


def suppressions_find(*, pairs: set[tuple[int, str]]) -> dict[tuple[int, str], str]:
    """Which (workspace, address) pairs may never be sent to, with the reason (for the
    campaign dispatcher, which skips them before reserving)."""
    return _suppressions(pairs)


def _refuse_suppressed(rows: list[Message]) -> None:
    suppressed = _suppressions({(m.workspace_id, m.recipient) for m in rows})
    for message in rows:
        reason = suppressed.get((message.workspace_id, message.recipient))
        if reason:
            raise ApplicationError(
                f"{message.recipient} is on the suppression list ({reason.replace('_', ' ')}): "
                "it is never sent to again.",
                code="suppressed",
            )


@dataclass
class HandOverSummary:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0

    def add(self, outcome: Outcome) -> None:
        if outcome is Outcome.SENT:
            self.sent += 1
        elif outcome is Outcome.RETRY:
            self.retried += 1
        else:
            self.failed += 1


class _Claimed(NamedTuple):
    """A claimed message as sending needs it (thousands are loaded per run: no model rows)."""

    pk: int
    attempts: int
    transport: str
    mailbox_id: int | None
    maybe_sent: bool
    domain_status: str
    mailbox_status: str | None  # None: the mailbox was removed
    domain_tier: str
    workspace_id: int
    outgoing: Outgoing


_CLAIMED_COLUMNS = (
    "id",
    "attempts",
    "transport",
    "mailbox_id",
    "maybe_sent",
    "workspace_id",
    "message_id",
    "sender",
    "sender_name",
    "recipient",
    "recipient_name",
    "subject",
    "text_body",
    "html_body",
    "headers",
    "kind",
    "campaign_ref",
)


def _claimed(row: Sequence[Any]) -> _Claimed:
    pk, attempts, transport, mailbox_id, maybe_sent, workspace_id = row[:6]
    message_id, sender, sender_name, recipient, recipient_name, subject = row[6:12]
    text_body, html_body, headers, kind, campaign_ref = row[12:17]
    tenant, domain_status, mailbox_status, domain_tier = row[17:]
    return _Claimed(
        pk,
        attempts,
        transport,
        mailbox_id,
        maybe_sent,
        domain_status,
        mailbox_status,
        domain_tier,
        workspace_id,
        Outgoing(
            key=pk,
            message_id=message_id,
            sender=sender,
            sender_name=sender_name,
            recipient=recipient,
            recipient_name=recipient_name,
            subject=subject,
            text_body=text_body,
            html_body=html_body,
            headers=orjson.loads(headers) if isinstance(headers, str | bytes) else headers,
            tenant=tenant,
            kind=kind,
            campaign=campaign_ref,
            resend=maybe_sent,
        ),
    )


def _claim(message_ids: Sequence[int] | None, limit: int, now: datetime) -> list[_Claimed]:
    """Due reserved messages become `sending` (committed before any transport is called) and
    come back loaded, with their domain's and mailbox's status as they are now. A concurrent
    worker skips the locked rows, and the update is conditional, so no row is taken twice. On
    PostgreSQL one statement does it all. No attempt is counted yet: batch by batch,
    `_attempt_start` does that just before the transport is called."""
    if connection.vendor != "postgresql":
        return _claim_orm(message_ids, limit, now)
    table = Message._meta.db_table
    domains = SendingDomain._meta.db_table
    mailboxes = Mailbox._meta.db_table
    only = "AND id = ANY(%s)" if message_ids is not None else ""
    returning = ", ".join(f"m.{column}" for column in _CLAIMED_COLUMNS)
    params: list[Any] = [MessageState.RESERVED, now]
    if message_ids is not None:
        params.append(list(message_ids))
    params += [limit, MessageState.SENDING, now, MessageState.RESERVED]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"WITH due AS (SELECT id FROM {table} WHERE state = %s AND next_attempt_at <= %s "
            f"{only} ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED) "
            f"UPDATE {table} m SET state = %s, claimed_at = %s, attempt_started_at = NULL "
            f"FROM due JOIN {table} j ON j.id = due.id "
            f"JOIN {domains} d ON d.id = j.domain_id "
            f"LEFT JOIN {mailboxes} mb ON mb.id = j.mailbox_id "
            f"WHERE m.id = due.id AND m.state = %s "
            f"RETURNING {returning}, d.public_id, d.status, mb.status, d.tier",
            params,
        )
        return [_claimed(row) for row in cursor.fetchall()]


def _claim_orm(message_ids: Sequence[int] | None, limit: int, now: datetime) -> list[_Claimed]:
    with transaction.atomic():
        due = Message.objects.filter(state=MessageState.RESERVED, next_attempt_at__lte=now)
        if message_ids is not None:
            due = due.filter(pk__in=list(message_ids))
        ids = list(
            due.select_for_update(skip_locked=True)
            .order_by("next_attempt_at", "pk")
            .values_list("pk", flat=True)[:limit]
        )
        Message.objects.filter(pk__in=ids, state=MessageState.RESERVED).update(
            state=MessageState.SENDING, claimed_at=now, attempt_started_at=None
        )
        rows = Message.objects.filter(pk__in=ids).values_list(
            *_CLAIMED_COLUMNS,
            "domain__public_id",
            "domain__status",
            "mailbox__status",
            "domain__tier",
        )
        return [_claimed(row) for row in rows]


HOLD_DELAY = timedelta(minutes=15)
EXTERNAL_TIERS = frozenset({Tier.PREMIUM, Tier.STANDARD})


def _unsendable(claimed: list[_Claimed]) -> dict[int, tuple[bool, str]]:
    """Messages that may not go now, checked again at claim time (a message may wait hours for
    its time): message id -> (for good, reason). A suppressed recipient or a removed mailbox is
    for good; a paused mailbox or a domain that may not send now waits."""
    suppressed = _suppressions({(m.workspace_id, m.outgoing.recipient) for m in claimed})
    unpaid = external_sending_blocked(
        workspace_ids={m.workspace_id for m in claimed if m.outgoing.kind == MessageKind.CAMPAIGN}
    )
    verdicts: dict[int, tuple[bool, str]] = {}
    for message in claimed:
        recipient = message.outgoing.recipient
        reason = suppressed.get((message.workspace_id, recipient))
        if reason:
            verdicts[message.pk] = (
                True,
                f"Not sent: {recipient} was added to the suppression list "
                f"({reason.replace('_', ' ')}) after this message was scheduled.",
            )
        elif message.domain_status == DomainStatus.RETIRED or message.mailbox_status is None:
            verdicts[message.pk] = (True, "Not sent: the domain or mailbox was removed.")
        elif message.domain_status != DomainStatus.VERIFIED:
            label = DomainStatus(message.domain_status).label.lower()
            verdicts[message.pk] = (False, f"Waiting: the domain is {label}.")
        elif message.mailbox_status != MailboxStatus.ACTIVE:
            label = MailboxStatus(message.mailbox_status).label.lower()
            verdicts[message.pk] = (False, f"Waiting: the mailbox is {label}.")
        elif (
            message.outgoing.kind == MessageKind.CAMPAIGN
            and message.domain_tier not in EXTERNAL_TIERS
        ):
            verdicts[message.pk] = (
                True,
                f"Not sent: the domain's trust tier fell to {message.domain_tier} after this "
                "message was scheduled, and only premium and standard domains send campaigns.",
            )
        elif message.workspace_id in unpaid and message.outgoing.kind == MessageKind.CAMPAIGN:
            verdicts[message.pk] = (
                False,
                "Waiting: campaigns are stopped until the workspace's plan is paid.",
            )
    return verdicts


def messages_hand_over(
    *,
    message_ids: Sequence[int] | None = None,
    limit: int | None = None,
    now: datetime | None = None,
) -> HandOverSummary:
    """Hand due messages (or the given ones, when due) to their transports, once each."""
    now = now or timezone.now()
    summary = HandOverSummary()
    claimed = _claim(message_ids, limit or settings.OUTBOUND_BATCH_SIZE, now)
    summary.claimed = len(claimed)
    if not claimed:
        return summary
    try:
        verdicts = _unsendable(claimed)
        if verdicts:
            _hold([m for m in claimed if m.pk in verdicts], verdicts, now, summary)
        groups: dict[tuple[str, int | None], list[_Claimed]] = defaultdict(list)
        # By sender, so that each batch a transport sends is one sender's (one request).
        for message in sorted(claimed, key=lambda m: (m.outgoing.sender, m.pk)):
            if message.pk in verdicts:
                continue
            own_server = message.transport == TransportName.MAILBOX_SMTP
            key = (message.transport, message.mailbox_id if own_server else None)
            groups[key].append(message)
        # One thread sends (a transport's connection serves one batch at a time) while this
        # one renders the next batch and books the last.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hand-over") as sender:
            pipeline = _Pipeline(sender, now, summary)
            for (name, mailbox_id), group in groups.items():
                _hand_over_group(name, mailbox_id, group, pipeline)
    finally:
        _release_unstarted([m.pk for m in claimed], now)
    return summary


def _hold(
    messages: list[_Claimed],
    verdicts: dict[int, tuple[bool, str]],
    now: datetime,
    summary: HandOverSummary,
) -> None:
    """Book claimed messages that may not go now, without counting an attempt."""
    groups: dict[tuple[tuple[str, Any], ...], list[int]] = defaultdict(list)
    for message in messages:
        for_good, reason = verdicts[message.pk]
        values: dict[str, Any] = {"last_error": reason}
        if for_good:
            values |= {"state": MessageState.FAILED, "finished_at": timezone.now()}
            summary.failed += 1
        else:
            values |= {"state": MessageState.RESERVED, "next_attempt_at": now + HOLD_DELAY}
            summary.retried += 1
        groups[tuple(sorted(values.items()))].append(message.pk)
    with transaction.atomic():
        for values_key, ids in groups.items():
            Message.objects.filter(
                pk__in=ids, state=MessageState.SENDING, claimed_at=now, attempt_started_at=None
            ).update(**dict(values_key))


def _release_unstarted(ids: list[int], claimed_at: datetime) -> None:
    """Claimed messages this run never started (an error stopped it) wait for the next run."""
    try:
        Message.objects.filter(
            pk__in=ids,
            state=MessageState.SENDING,
            claimed_at=claimed_at,
            attempt_started_at__isnull=True,
        ).update(state=MessageState.RESERVED)
    except DatabaseError:
        logger.warning("could not release unstarted messages; reconciliation will")


def _hand_over_group(
    name: str, mailbox_id: int | None, group: list[_Claimed], pipeline: _Pipeline
) -> None:
    now, summary = pipeline.now, pipeline.summary
    mailbox = None
    if mailbox_id is not None:
        mailbox = Mailbox.objects.filter(pk=mailbox_id).select_related("domain").first()
    try:
        transport = _transport(name, mailbox)
    except Exception as error:  # not configured, a secret that no key decrypts ...
        if not isinstance(error, ApplicationError):
            logger.exception("could not set up the %s transport", name)
        reason = str(error) if isinstance(error, ApplicationError) else f"Cannot connect: {error}"
        _hold(group, dict.fromkeys((m.pk for m in group), (False, reason)), now, summary)
        return
    # For a next hop that drops a copy it has, the whole group's attempt starts at once (one
    # statement): should this run die midway, re-sending its unsent rest is harmless. Anywhere
    # else each batch starts just before it goes, so nothing unsent looks maybe-sent.
    stamped = None
    if transport.drops_duplicates:
        stamped = _stamp([m.pk for m in group], now, durable=False)
    try:
        in_flight: _Batch | None = None
        for chunk in _chunks(group, _batch_size(transport)):
            batch = _render(transport, chunk)
            _attempt_start(transport, batch, now, stamped)
            batch.sent = pipeline.sender.submit(_send_in_thread, transport, batch.items)
            if in_flight is not None:
                _finish(in_flight, now, summary)
            in_flight = batch
        if in_flight is not None:
            _finish(in_flight, now, summary)
    finally:
        transport.close()


@dataclass
class _Batch:
    sendable: list[_Claimed]
    items: list[tuple[Outgoing, bytes]]
    results: list[tuple[_Claimed, SendResult]]  # decided without the transport
    started_at: datetime | None = None
    durable: bool = True
    sent: Future[list[SendResult]] | None = None


@dataclass
class _Pipeline:
    """Batches are pipelined: while the next hop handles one, the next is rendered and
    started, and the one before is booked."""

    sender: ThreadPoolExecutor
    now: datetime
    summary: HandOverSummary


def _render(transport: Transport, chunk: list[_Claimed]) -> _Batch:
    batch = _Batch(sendable=[], items=[], results=[], durable=not transport.drops_duplicates)
    date = timezone.now()
    for message in chunk:
        try:
            mime = mime_build(
                message.outgoing, date=date, routing_headers=transport.routing_headers
            )
        except MessageContentError as error:
            failure = SendResult(Outcome.FAILED, f"Cannot be written: {error}")
            batch.results.append((message, failure))
            continue
        batch.items.append((message.outgoing, mime))
        batch.sendable.append(message)
    return batch


def _stamp(ids: list[int], claimed_at: datetime, durable: bool) -> tuple[datetime, set[int]]:
    """Count an attempt and stamp its start on messages this run still holds (reconciliation
    may have taken one), committed before the transport is called; returns the stamp and the
    ids held."""
    started = timezone.now()
    with transaction.atomic():
        _commit_without_waiting(durable)
        if connection.vendor == "postgresql":
            table = Message._meta.db_table
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} SET attempt_started_at = %s, attempts = attempts + 1 "
                    "WHERE id = ANY(%s) AND state = %s AND claimed_at = %s "
                    "AND attempt_started_at IS NULL RETURNING id",
                    [started, ids, MessageState.SENDING, claimed_at],
                )
                return started, {pk for (pk,) in cursor.fetchall()}
        mine = Message.objects.filter(
            pk__in=ids, state=MessageState.SENDING, claimed_at=claimed_at, attempt_started_at=None
        )
        held = set(mine.values_list("pk", flat=True))
        mine.update(attempt_started_at=started, attempts=F("attempts") + 1)
        return started, held


def _attempt_start(
    transport: Transport,
    batch: _Batch,
    claimed_at: datetime,
    stamped: tuple[datetime, set[int]] | None = None,
) -> None:
    """Start the batch's attempt (or take the stamp its whole group got at once); only the
    messages held go on."""
    if stamped is None:
        ids = [m.pk for m in batch.sendable] + [m.pk for m, _ in batch.results]
        stamped = _stamp(ids, claimed_at, batch.durable)
    batch.started_at, held = stamped
    batch.results = [(m, r) for m, r in batch.results if m.pk in held]
    keep = [i for i, m in enumerate(batch.sendable) if m.pk in held]
    batch.sendable = [batch.sendable[i] for i in keep]
    batch.items = [batch.items[i] for i in keep]
    if transport.drops_duplicates:
        _forget_refused(batch)


def _forget_refused(batch: _Batch) -> None:
    """The MTA's policy notes each Message-ID it accepts, and drops a later copy. A message
    retried after attempts that all got a clear answer was never accepted; a note of it can
    only come from a step that refused it after noting, so it is cleared before the message
    goes again. A message that may have been accepted keeps its note. If the notes cannot be
    cleared, those messages wait rather than be dropped as copies of themselves."""
    retried = [
        m for m in batch.sendable if m.attempts >= 1 and not m.maybe_sent
    ]  # `attempts` as claimed: attempts before this one
    if not retried:
        return
    try:
        kumo_redis().delete(*[key(f"accepted:{m.outgoing.message_id}") for m in retried])
    except redis.RedisError as error:
        logger.warning("could not clear %d accepted-message notes: %r", len(retried), error)
        waiting = {m.pk for m in retried}
        reason = SendResult(Outcome.RETRY, "Waiting: the MTA's notes could not be checked.")
        batch.results += [(m, reason) for m in batch.sendable if m.pk in waiting]
        keep = [i for i, m in enumerate(batch.sendable) if m.pk not in waiting]
        batch.sendable = [batch.sendable[i] for i in keep]
        batch.items = [batch.items[i] for i in keep]


def _send_in_thread(transport: Transport, items: list[tuple[Outgoing, bytes]]) -> list[SendResult]:
    """`_send` in the hand-over thread. A login there may use the database (an OAuth mailbox's
    access token): that thread's connection is closed afterwards, not left for the garbage
    collector."""
    try:
        return _send(transport, items)
    finally:
        connection.close()


def _send(transport: Transport, items: list[tuple[Outgoing, bytes]]) -> list[SendResult]:
    if not items:
        return []
    try:
        return transport.send_many(items)
    except Exception as error:  # a transport bug must not strand the claimed messages
        logger.exception("transport %s failed", transport.name)
        failure = SendResult(
            Outcome.RETRY, f"Internal error in the transport: {error}", ambiguous=True
        )
        return [failure] * len(items)


def _finish(batch: _Batch, now: datetime, summary: HandOverSummary) -> None:
    """Wait for a batch's answers and book them."""
    assert batch.sent is not None
    results = batch.results + list(zip(batch.sendable, batch.sent.result(), strict=True))
    _book(results, now, summary, started_at=batch.started_at, durable=batch.durable)


def _commit_without_waiting(durable: bool) -> None:
    """For a next hop that drops a copy it already has, the attempt's stamp and its booking
    need not wait for the disk: lost in a database crash, they leave a message `sending` (or
    unstarted), which reconciliation sends again harmlessly."""
    if not durable and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")


def _book(
    results: list[tuple[_Claimed, SendResult]],
    now: datetime,
    summary: HandOverSummary,
    *,
    started_at: datetime | None,
    durable: bool = True,
) -> None:
    """Record each result on its message; only rows still in this attempt change (the MTA's
    records may have moved one on, or reconciliation taken it). Alike results share one UPDATE;
    not `durable`: see `_commit_without_waiting`."""
    finished = timezone.now()
    groups: dict[tuple[tuple[str, Any], ...], list[int]] = defaultdict(list)
    for message, result in results:
        summary.add(result.outcome)
        attempts = message.attempts + 1  # this attempt counted
        values: dict[str, Any]
        if result.outcome is Outcome.SENT:
            values = {"state": MessageState.HANDED_OVER, "handed_over_at": finished}
            values["last_error"] = ""
            if result.mta_id:
                values["mta_id"] = result.mta_id[:64]
        elif result.outcome is Outcome.RETRY and attempts < settings.OUTBOUND_MAX_ATTEMPTS:
            values = {
                "state": MessageState.RESERVED,
                "next_attempt_at": now + _backoff(attempts),
                "last_error": result.reason,
            }
        else:
            reason = result.reason
            if result.outcome is Outcome.RETRY:
                reason = f"Gave up after {attempts} attempts. Last: {reason}"
            values = {"state": MessageState.FAILED, "finished_at": finished, "last_error": reason}
        if result.ambiguous:
            values["maybe_sent"] = True
        groups[tuple(sorted(values.items()))].append(message.pk)
    with transaction.atomic():
        _commit_without_waiting(durable)
        for values_key, ids in groups.items():
            Message.objects.filter(
                pk__in=ids, state=MessageState.SENDING, attempt_started_at=started_at
            ).update(**dict(values_key))


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), RETRY_MAX_SECONDS))


def _chunks(items: list[_Claimed], size: int) -> Iterator[list[_Claimed]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _batch_size(transport: Transport) -> int:
    return getattr(transport, "batch_size", 100)


def _transport(name: str, mailbox: Mailbox | None) -> Transport:
    if name == TransportName.MAILBOX_SMTP:
        if mailbox is None:
            raise ApplicationError("The mailbox was removed.")
        return SmtpTransport(
            name=name,
            spec=mailbox_server_spec(mailbox, "smtp"),
            timeout=settings.OUTBOUND_SMTP_TIMEOUT_SECONDS,
            ca_file=settings.MAILBOX_TLS_CA_FILE,
            allow_private=settings.MAILBOX_ALLOW_PRIVATE_HOSTS,
        )
    if name == TransportName.SMTP_RELAY:
        return SmtpTransport(
            name=name,
            spec=ServerSpec(
                host=settings.SMTP_RELAY_HOST,
                port=settings.SMTP_RELAY_PORT,
                security=settings.SMTP_RELAY_SECURITY,
                username=settings.SMTP_RELAY_USERNAME,
                password=settings.SMTP_RELAY_PASSWORD,
            ),
            timeout=settings.OUTBOUND_SMTP_TIMEOUT_SECONDS,
            allow_private=True,  # the operator's own relay
            routing_headers=settings.SMTP_RELAY_IS_KUMOMTA,
            drops_duplicates=settings.SMTP_RELAY_IS_KUMOMTA,
        )
    url = settings.KUMO_INJECT_URL or _embedded_inject_url()
    if not url:
        raise ApplicationError(
            "KumoMTA injection is not configured (KUMO_INJECT_URL): the message waits."
        )
    return KumoHttpTransport(
        url=url,
        client=_inject_client(
            settings.KUMO_INJECT_USERNAME,
            settings.KUMO_INJECT_PASSWORD,
            settings.KUMO_INJECT_TIMEOUT_SECONDS,
        ),
        batch_size=settings.KUMO_INJECT_BATCH_SIZE,
        max_request_bytes=settings.KUMO_INJECT_MAX_REQUEST_BYTES,
    )


_clients: dict[tuple[str, str, float], httpx.Client] = {}
_clients_lock = threading.Lock()


def _inject_client(username: str, password: str, timeout: float) -> httpx.Client:
    """One HTTP client per process and setting: its connections to the node stay open between
    hand-overs (and building one costs more than a whole batch of requests)."""
    with _clients_lock:
        client = _clients.get((username, password, timeout))
        if client is None:
            client = KumoHttpTransport.client_new(username, password, timeout)
            _clients[(username, password, timeout)] = client
        return client


def _embedded_inject_url() -> str:
    if not settings.EMBEDDED:
        return ""
    from config.embedded_mta import embedded_mta_url

    return embedded_mta_url()


def _drops_duplicates(name: str) -> bool:
    if name == TransportName.KUMO_HTTP:
        return True
    return name == TransportName.SMTP_RELAY and settings.SMTP_RELAY_IS_KUMOMTA


def messages_reconcile(*, now: datetime | None = None) -> dict[str, int]:
    """Settle hand-overs a worker left half done (it died, or lost the database). A message it
    claimed but never started waits for the next run. One whose attempt started longer ago than
    the lease is settled by the evidence: the MTA's records prove it went; else our MTA may be
    sent it again (it drops a copy it has); anything else is failed rather than risk a second
    copy in someone's inbox."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.OUTBOUND_HANDOVER_LEASE_SECONDS)
    counts = {"released": 0, "proven": 0, "resent": 0, "failed": 0}
    with transaction.atomic():
        stuck = list(
            Message.objects.select_for_update(skip_locked=True)
            .filter(state=MessageState.SENDING)
            .filter(
                Q(attempt_started_at__lt=cutoff)
                | Q(attempt_started_at__isnull=True, claimed_at__lt=cutoff)
            )[: settings.OUTBOUND_BATCH_SIZE]
        )
        if not stuck:
            return counts
        seen = dict(
            Event.objects.filter(outbound__in=stuck)
            .values("outbound_id")
            .annotate(first=Min("occurred_at"))
            .values_list("outbound_id", "first")
        )
        for message in stuck:
            if message.attempt_started_at is None:
                message.state = MessageState.RESERVED
                counts["released"] += 1
            elif message.pk in seen or message.mta_id:
                message.state = MessageState.HANDED_OVER
                message.handed_over_at = seen.get(message.pk) or now
                message.last_error = (
                    "The hand-over was interrupted; the MTA's records show it was accepted."
                )
                counts["proven"] += 1
            elif _drops_duplicates(message.transport):
                message.state = MessageState.RESERVED
                message.next_attempt_at = now
                message.maybe_sent = True
                message.last_error = (
                    "The hand-over was interrupted; sent again (the MTA drops a copy it "
                    "already has)."
                )
                counts["resent"] += 1
            else:
                message.state = MessageState.FAILED
                message.finished_at = now
                message.maybe_sent = True
                message.last_error = (
                    "The hand-over was interrupted and the server cannot tell whether it arrived, "
                    "so it is not sent again (the recipient must not get it twice)."
                )
                counts["failed"] += 1
        Message.objects.bulk_update(
            stuck,
            [
                "state",
                "handed_over_at",
                "last_error",
                "next_attempt_at",
                "finished_at",
                "maybe_sent",
            ],
        )
    return counts


def messages_due_claim_ids(*, now: datetime | None = None, limit: int = 10000) -> list[int]:
    """Ids of reserved messages whose time has come (retries, scheduled sends), for fan-out."""
    now = now or timezone.now()
    return list(
        Message.objects.filter(state=MessageState.RESERVED, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
