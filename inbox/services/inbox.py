"""Writes of the unified inbox: labels (built-in and the workspace's own), read state, and the
answer sent in-thread from the page through the mailbox the reply arrived in.

Every change the navigation's unread badge depends on pushes the new count to the workspace's
socket (`inbox_unread_push`) once the transaction commits."""

import re
from collections.abc import Iterable
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User, Workspace
from accounts.services import audit_log_record, workspace_notify
from config.errors import ApplicationError
from inbox.models import Reply, ReplyKind, ReplyLabel, SystemLabel
from inbox.selectors import ANSWERABLE_KINDS, reply_label_list, unread_count
from reputation.scoring import Tier
from sending.models import MailboxStatus, Message, MessageKind
from sending.services.outbound import MessageDraft, messages_reserve

LABEL_NAME_MAX = 60
BODY_MAX = 20_000
QUOTE_MAX = 4_000
INBOX_UNREAD_EVENT = "inbox_unread"
# "Re:", "RE:", "re :" and the usual translations, so an answer never says "Re: Re:".
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|vs|antw|rif|r|wg)\s*:\s*", re.IGNORECASE)
# Labels that say opposite things: setting one takes the other off.
_OPPOSITES = {
    SystemLabel.INTERESTED: SystemLabel.NOT_INTERESTED,
    SystemLabel.NOT_INTERESTED: SystemLabel.INTERESTED,
}


# --- live count ----------------------------------------------------------------------------------


def inbox_unread_push(*, workspace_id: int, text: str = "") -> None:
    """Push the workspace's unread count (and an optional notice) to its socket after commit;
    the count is read then, so two writes racing both end with the true number."""

    def push() -> None:
        workspace = Workspace.objects.filter(pk=workspace_id).first()
        if workspace is None:
            return
        payload: dict[str, object] = {"unread": unread_count(workspace=workspace_id)}
        if text:
            payload["text"] = text
        workspace_notify(workspace=workspace, event=INBOX_UNREAD_EVENT, payload=payload)

    transaction.on_commit(push)


# --- labels --------------------------------------------------------------------------------------


def reply_labels_ensure(*, workspace: Workspace) -> list[ReplyLabel]:
    """The workspace's labels, creating the five built-in ones the first time they are needed."""
    have = set(
        ReplyLabel.objects.filter(workspace=workspace)
        .exclude(system="")
        .values_list("system", flat=True)
    )
    missing = [s for s in SystemLabel if s.value not in have]
    if missing:
        ReplyLabel.objects.bulk_create(
            [ReplyLabel(workspace=workspace, name=s.label, system=s.value) for s in missing],
            ignore_conflicts=True,
        )
    return reply_label_list(workspace=workspace)


def _label_name(name: str) -> str:
    cleaned = " ".join((name or "").split())
    if not cleaned:
        raise ApplicationError(
            "A label needs a name.", fields={"name": ["This field is required."]}
        )
    if len(cleaned) > LABEL_NAME_MAX:
        raise ApplicationError(
            "The label name is too long.",
            fields={"name": [f"At most {LABEL_NAME_MAX} characters."]},
        )
    return cleaned


def _refuse_taken(workspace: Workspace, name: str, keep: ReplyLabel | None = None) -> None:
    taken = ReplyLabel.objects.filter(workspace=workspace, name__iexact=name)
    if keep is not None:
        taken = taken.exclude(pk=keep.pk)
    if taken.exists():
        raise ApplicationError(
            f"There is already a label called “{name}”.",
            code="label_exists",
            fields={"name": [f"There is already a label called “{name}”: choose another name."]},
        )


@transaction.atomic
def reply_label_create(*, workspace: Workspace, actor: User | None, name: str) -> ReplyLabel:
    """Add a label of the workspace's own (names are unique in a workspace, ignoring case)."""
    reply_labels_ensure(workspace=workspace)
    cleaned = _label_name(name)
    _refuse_taken(workspace, cleaned)
    try:
        with transaction.atomic():
            label = ReplyLabel.objects.create(workspace=workspace, name=cleaned)
    except IntegrityError:  # the same name created at the same moment
        raise ApplicationError(
            f"There is already a label called “{cleaned}”.", code="label_exists"
        ) from None
    audit_log_record(
        action="reply_label.create",
        actor=actor,
        obj=label,
        workspace=workspace,
        after={"name": cleaned},
    )
    return label


def _refuse_built_in(label: ReplyLabel, verb: str) -> None:
    if label.system:
        raise ApplicationError(
            f"“{label.name}” is a built-in label: it cannot be {verb}.", code="label_built_in"
        )


@transaction.atomic
def reply_label_rename(*, label: ReplyLabel, actor: User | None, name: str) -> ReplyLabel:
    """Rename one of the workspace's own labels."""
    _refuse_built_in(label, "renamed")
    cleaned = _label_name(name)
    _refuse_taken(label.workspace, cleaned, keep=label)
    old = label.name
    label.name = cleaned
    label.save(update_fields=["name"])
    audit_log_record(
        action="reply_label.rename",
        actor=actor,
        obj=label,
        workspace=label.workspace,
        before={"name": old},
        after={"name": cleaned},
    )
    return label


@transaction.atomic
def reply_label_delete(*, label: ReplyLabel, actor: User | None) -> None:
    """Delete one of the workspace's own labels (the replies keep everything else)."""
    _refuse_built_in(label, "deleted")
    audit_log_record(
        action="reply_label.delete",
        actor=actor,
        obj=label,
        workspace=label.workspace,
        before={"name": label.name},
    )
    label.delete()


@transaction.atomic
def reply_label_set(
    *,
    reply: Reply,
    actor: User | None,
    add: Iterable[ReplyLabel] = (),
    remove: Iterable[ReplyLabel] = (),
) -> list[ReplyLabel]:
    """Put labels on a reply and take others off; "interested" and "not interested" exclude
    each other. Returns the reply's labels afterwards."""
    adding, removing = list(add), list(remove)
    for label in adding + removing:
        if label.workspace_id != reply.workspace_id:
            raise ApplicationError("No such label in this workspace.", code="not_found", status=404)
    if {lb.pk for lb in adding} & {lb.pk for lb in removing}:
        raise ApplicationError("A label cannot be added and removed at once.")
    current = {lb.pk: lb for lb in reply.labels.all()}
    opposite_systems = {
        _OPPOSITES[SystemLabel(lb.system)] for lb in adding if lb.system in _OPPOSITES
    }
    removing += [lb for lb in current.values() if lb.system in opposite_systems]
    added = [lb for lb in adding if lb.pk not in current]
    removed = [lb for lb in {lb.pk: lb for lb in removing}.values() if lb.pk in current]
    if added:
        reply.labels.add(*added)
    if removed:
        reply.labels.remove(*removed)
    if added or removed:
        audit_log_record(
            action="reply.label",
            actor=actor,
            obj=reply,
            workspace=reply.workspace,
            before={"labels": sorted(lb.name for lb in current.values())},
            after={
                "added": [lb.name for lb in added],
                "removed": [lb.name for lb in removed],
            },
        )
    if hasattr(reply, "_prefetched_objects_cache"):
        reply._prefetched_objects_cache.pop("labels", None)
    return reply_label_list_of(reply=reply)


def reply_label_list_of(*, reply: Reply) -> list[ReplyLabel]:
    order = {value: index for index, value in enumerate(SystemLabel.values)}
    labels = list(reply.labels.all())
    return sorted(labels, key=lambda lb: (order.get(lb.system, len(order)), lb.name.lower()))


# --- read state ----------------------------------------------------------------------------------


def _read_set(reply: Reply, read_at: datetime | None) -> bool:
    """Conditional update: True when this call changed the state (so only a change pushes)."""
    rows = Reply.objects.filter(pk=reply.pk)
    rows = rows.filter(read_at__isnull=True) if read_at else rows.filter(read_at__isnull=False)
    changed = rows.update(read_at=read_at) == 1
    if changed:
        reply.read_at = read_at
        if reply.kind == ReplyKind.HUMAN:
            inbox_unread_push(workspace_id=reply.workspace_id)
    return changed


@transaction.atomic
def reply_mark_read(*, reply: Reply, now: datetime | None = None) -> bool:
    """Mark a reply read (again is a no-op); True when it was unread."""
    return _read_set(reply, now or timezone.now())


@transaction.atomic
def reply_mark_unread(*, reply: Reply) -> bool:
    """Mark a reply unread again; True when it was read."""
    return _read_set(reply, None)


# --- answering -----------------------------------------------------------------------------------


def reply_subject(subject: str) -> str:
    """ "Re: " and the subject without any reply prefixes it already has (never "Re: Re:")."""
    bare = subject.strip()
    while True:
        stripped = _REPLY_PREFIX.sub("", bare, count=1)
        if stripped == bare:
            break
        bare = stripped
    return f"Re: {bare}" if bare else "Re:"


def _msg_id(value: str) -> str:
    value = value.strip().strip("<>").strip()
    return f"<{value}>" if value else ""


def _references(reply: Reply) -> list[str]:
    chain: list[str] = []
    if reply.campaign_lead is not None and reply.campaign_lead.thread_message_id:
        chain.append(_msg_id(reply.campaign_lead.thread_message_id))
    if reply.in_reply_to is not None:
        chain.append(_msg_id(reply.in_reply_to.message_id))
    chain.append(_msg_id(reply.message_id))
    seen: list[str] = []
    for item in chain:
        if item and item not in seen:
            seen.append(item)
    return seen


def _quoted(reply: Reply) -> str:
    text = reply.text.strip()
    if not text:
        return ""
    if len(text) > QUOTE_MAX:
        text = text[:QUOTE_MAX].rstrip() + "\n[…]"
    who = reply.from_name or reply.from_address
    when = timezone.localtime(reply.received_at).strftime("%a %d %b %Y at %H:%M")
    quoted = "\n".join(f"> {line}" if line else ">" for line in text.splitlines())
    return f"\n\nOn {when}, {who} wrote:\n{quoted}\n"


def _refuse_unanswerable(reply: Reply) -> None:
    if reply.kind not in ANSWERABLE_KINDS:
        why = (
            "a delivery failure comes from a mail server, not a person"
            if reply.kind == ReplyKind.BOUNCE
            else "the sender asked to be unsubscribed and is never emailed again"
        )
        raise ApplicationError(
            f"This {reply.get_kind_display().lower()} cannot be answered: {why}.",
            code="reply_not_answerable",
        )
    if not reply.from_address:
        raise ApplicationError("This reply has no sender address to answer.", code="invalid")
    mailbox = reply.mailbox
    if mailbox is None:
        raise ApplicationError(
            "The mailbox this reply arrived in was deleted: it cannot be answered from here.",
            code="mailbox_deleted",
        )
    domain = mailbox.domain
    if not domain.can_send:
        raise ApplicationError(
            f"{mailbox.address} cannot answer: its domain {domain.name} is "
            f"{domain.get_status_display().lower()}.",
            code="domain_cannot_send",
        )
    if domain.tier == Tier.QUARANTINE:
        raise ApplicationError(
            f"{mailbox.address} cannot answer: {domain.name} is in quarantine.",
            code="domain_quarantined",
        )
    if mailbox.status != MailboxStatus.ACTIVE:
        raise ApplicationError(
            f"{mailbox.address} cannot answer while it is {mailbox.get_status_display().lower()}"
            ": resume it first.",
            code="mailbox_not_active",
        )


@transaction.atomic
def reply_send(*, reply: Reply, actor: User | None, body: str) -> Message:
    """Answer a reply in its thread, from the mailbox it arrived in, through the outbound path
    (kind "reply"); the reply is marked read."""
    text = (body or "").strip()
    if not text:
        raise ApplicationError(
            "Write something to send.", fields={"body": ["This field is required."]}
        )
    if len(text) > BODY_MAX:
        raise ApplicationError(
            "The answer is too long.", fields={"body": [f"At most {BODY_MAX} characters."]}
        )
    _refuse_unanswerable(reply)
    mailbox = reply.mailbox
    assert mailbox is not None  # checked above
    original = reply.subject or (reply.in_reply_to.subject if reply.in_reply_to else "")
    headers: dict[str, str] = {}
    references = _references(reply)
    if references:
        headers["In-Reply-To"] = references[-1]
        headers["References"] = " ".join(references)
    draft = MessageDraft(
        mailbox=mailbox,
        kind=MessageKind.REPLY,
        recipient=reply.from_address,
        recipient_name=reply.from_name[:120],
        subject=reply_subject(original)[:500],
        text_body=text + (_quoted(reply) or "\n"),
        headers=headers,
    )
    (message,) = messages_reserve(drafts=[draft])
    audit_log_record(
        action="reply.send",
        actor=actor,
        obj=reply,
        workspace=reply.workspace,
        after={"message_id": message.message_id, "to": message.recipient, "from": mailbox.address},
    )
    if reply.read_at is None:
        _read_set(reply, timezone.now())
    return message
