"""Reads for the unified inbox: replies across mailboxes and campaigns (filtered, no N+1), the
unread count for the navigation, one reply with its thread, and labels. (A campaign's reply
numbers are part of its stats: campaigns.selectors.)"""

from collections.abc import Iterable
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.db.models.fields.json import KeyTextTransform

from accounts.models import Workspace
from campaigns.models import Campaign
from inbox.models import Reply, ReplyKind, ReplyLabel, SystemLabel
from sending.models import DomainStatus, Mailbox, Message, MessageKind

# Replies that may be answered from the inbox: people (and what looks like people's
# auto-responders). A delivery failure comes from a mail server; an unsubscribe request is
# honoured by suppressing the address, never answered.
ANSWERABLE_KINDS = frozenset({ReplyKind.HUMAN, ReplyKind.AUTO_REPLY, ReplyKind.OUT_OF_OFFICE})


def _labels_prefetch() -> Prefetch:
    return Prefetch("labels", queryset=ReplyLabel.objects.order_by("system", "name"))


def reply_list(
    *,
    workspace: Workspace | None = None,
    workspace_ids: Iterable[int] | QuerySet[Any] | None = None,
    campaign: Campaign | None = None,
    mailbox: Mailbox | None = None,
    label: ReplyLabel | None = None,
    kind: str = "",
    unread_only: bool = False,
) -> QuerySet[Reply]:
    """The workspace's replies, newest first, with what a list row shows loaded in two queries
    (the rows, their labels). Every filter is also bound to the workspace."""
    if workspace is not None:
        replies = Reply.objects.filter(workspace=workspace)
    elif workspace_ids is not None:
        replies = Reply.objects.filter(workspace_id__in=workspace_ids)
    else:
        raise ValueError("reply_list needs a workspace or workspace_ids.")
    if campaign is not None:
        replies = replies.filter(campaign=campaign)
    if mailbox is not None:
        replies = replies.filter(mailbox=mailbox)
    if label is not None:
        replies = replies.filter(labels=label)
    if kind:
        replies = replies.filter(kind=kind)
    if unread_only:
        replies = replies.filter(read_at__isnull=True)
    return (
        replies.select_related("workspace", "mailbox__domain", "campaign", "lead")
        .prefetch_related(_labels_prefetch())
        .order_by("-received_at", "-id")
    )


def unread_count(*, workspace: Workspace | int) -> int:
    """Human replies nobody has opened yet (what the navigation badge shows)."""
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    return Reply.objects.filter(
        workspace_id=workspace_id, kind=ReplyKind.HUMAN, read_at__isnull=True
    ).count()


def reply_get(
    *,
    public_id: str,
    workspace: Workspace | None = None,
    workspace_ids: Iterable[int] | QuerySet[Any] | None = None,
) -> Reply | None:
    """One reply of the workspace (or of the workspaces given), or None."""
    if workspace is None and workspace_ids is None:
        raise ValueError("reply_get needs a workspace or workspace_ids.")
    replies = Reply.objects.filter(public_id=public_id)
    if workspace is not None:
        replies = replies.filter(workspace=workspace)
    if workspace_ids is not None:
        replies = replies.filter(workspace_id__in=workspace_ids)
    return (
        replies.select_related(
            "workspace", "mailbox__domain", "campaign", "lead", "campaign_lead", "in_reply_to"
        )
        .prefetch_related(_labels_prefetch())
        .first()
    )


def reply_answers(*, reply: Reply) -> list[Message]:
    """What was sent from the inbox in answer to this reply, oldest first."""
    if not reply.message_id:
        return []
    return list(
        Message.objects.filter(workspace_id=reply.workspace_id, kind=MessageKind.REPLY)
        .annotate(answers=KeyTextTransform("In-Reply-To", "headers"))
        .filter(answers=f"<{reply.message_id}>")
        .order_by("created_at", "id")
    )


def reply_label_list(*, workspace: Workspace | int) -> list[ReplyLabel]:
    """The workspace's labels: built-in ones first (in their fixed order), then its own by name."""
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    order = {value: index for index, value in enumerate(SystemLabel.values)}
    labels = list(ReplyLabel.objects.filter(workspace_id=workspace_id))
    return sorted(labels, key=lambda lb: (order.get(lb.system, len(order)), lb.name.lower()))


def reply_label_get(*, workspace: Workspace | int, pk: int) -> ReplyLabel | None:
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    return ReplyLabel.objects.filter(workspace_id=workspace_id, pk=pk).first()


def reply_filter_campaigns(*, workspace: Workspace) -> QuerySet[Campaign]:
    return Campaign.objects.filter(workspace=workspace).order_by("name").only("public_id", "name")


def reply_filter_mailboxes(*, workspace: Workspace) -> QuerySet[Mailbox]:
    return (
        Mailbox.objects.filter(domain__workspace=workspace)
        .exclude(domain__status=DomainStatus.RETIRED)
        .select_related("domain")
        .order_by("domain__name", "local_part")
    )
