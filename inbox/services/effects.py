"""What a stored reply does to its lead, its campaigns and its sending domain's record.

`reply_effects_apply` runs once per reply: in the transaction that created the `Reply` row,
which is unique per mailbox and Message-ID, so a poll that reads a message again creates nothing
and changes nothing. Each step is also idempotent on its own (status changes are conditional,
suppressions are get-or-create, events have source keys). The rules: docs/replies.md.
"""

import logging
from datetime import date, datetime, timedelta

from django.db import transaction
from django.db.models import Q

from campaigns.models import CampaignLead, CampaignLeadState, Lead, LeadStatus, OutOfOffice
from campaigns.services.unsubscribe import lead_unsubscribe
from config.errors import ApplicationError
from inbox.classify import AUTO_REPLY, BOUNCE, HUMAN, OUT_OF_OFFICE, UNSUBSCRIBE, Classification
from inbox.models import Reply
from inbox.services.inbox import inbox_unread_push
from reputation.models import EventKind
from reputation.services.events import event_record
from sending.models import Message, MessageState, Suppression
from webhooks.services.deliveries import webhook_emit, webhook_event_id

logger = logging.getLogger(__name__)

OUT_OF_OFFICE_HOLD = timedelta(days=7)  # no return date stated: held this long
# Statuses a reply may change: a reply or an absence notice moves only a lead still in play; a
# bounce or an unsubscribe also moves one that replied. A bounced, unsubscribed or complaining
# lead stays so.
_OPEN = (LeadStatus.ACTIVE, LeadStatus.OUT_OF_OFFICE)
_OPEN_TO_END = (*_OPEN, LeadStatus.REPLIED)


@transaction.atomic
def reply_effects_apply(*, reply: Reply, classification: Classification) -> None:
    """Apply what a newly stored reply means (see the module docstring); call it once, in the
    transaction that created `reply`."""
    message = reply.in_reply_to
    if message is None:
        return
    kind = classification.kind
    if kind == HUMAN:
        _replied(reply, message)
        inbox_unread_push(
            workspace_id=reply.workspace_id, text=f"New reply from {reply.from_address}"
        )
    elif kind == OUT_OF_OFFICE:
        _out_of_office(reply)
    elif kind == BOUNCE:
        _bounced(reply, message, classification)
    elif kind == UNSUBSCRIBE:
        _unsubscribed(reply, message, classification)
    elif kind == AUTO_REPLY:
        # An automatic answer says nothing about the person: it stops only the campaigns set to.
        _stop_waiting(reply.lead, "Automatic reply.", where=Q(campaign__stop_on_auto_reply=True))


def _lead_status(
    lead: Lead | None,
    status: str,
    at: datetime,
    *,
    open_from: tuple[str, ...] = _OPEN,
    **extra: object,
) -> bool:
    """Move the lead to `status` if it is still open to change; True when it changed."""
    if lead is None:
        return False
    changed = Lead.objects.filter(pk=lead.pk, status__in=open_from).update(
        status=status, status_changed_at=at, updated_at=at, **extra
    )
    return bool(changed)


def _stop_waiting(lead: Lead | None, reason: str, *, where: Q | None = None) -> int:
    """Stop the lead's waiting steps in every campaign (or those matching `where`)."""
    if lead is None:
        return 0
    rows = CampaignLead.objects.filter(lead=lead, state=CampaignLeadState.WAITING)
    if where is not None:
        rows = rows.filter(where)
    return rows.update(
        state=CampaignLeadState.STOPPED, state_reason=reason[:300], next_at=None, waiting_for=""
    )


def _replied(reply: Reply, message: Message) -> None:
    day = reply.received_at.date()
    _lead_status(reply.lead, LeadStatus.REPLIED, reply.received_at)
    _stop_waiting(reply.lead, f"Replied on {day:%d %b %Y}.", where=Q(campaign__stop_on_reply=True))
    event_record(
        domain=message.domain,
        kind=EventKind.REPLIED,
        source_key=f"replied:{message.pk}",
        mailbox=message.mailbox,
        recipient=message.recipient,
        message_id=message.mta_id,
        message_kind=message.kind,
        occurred_at=reply.received_at,
        detail=f"Reply from {reply.from_address}"[:500],
        outbound=message,
    )


def _out_of_office(reply: Reply) -> None:
    back: date = reply.returns_on or (reply.received_at + OUT_OF_OFFICE_HOLD).date()
    # The lead is held everywhere until `back` (the dispatcher skips it till then); campaigns
    # set to stop on an absence end its sequence there.
    _lead_status(reply.lead, LeadStatus.OUT_OF_OFFICE, reply.received_at, out_of_office_until=back)
    _stop_waiting(
        reply.lead,
        f"Out of office until {back:%d %b %Y} (the campaign stops on absences).",
        where=Q(campaign__out_of_office=OutOfOffice.STOP),
    )
    webhook_emit(
        workspace_id=reply.workspace_id,
        event_type="lead.out_of_office",
        data={
            "lead": reply.lead.email if reply.lead else reply.from_address,
            "campaign": reply.campaign.public_id if reply.campaign else None,
            "return_date": back.isoformat(),
        },
        occurred_at=reply.received_at,
        event_id=webhook_event_id(f"ooo:{reply.pk}"),
    )


def _bounced(reply: Reply, message: Message, classification: Classification) -> None:
    bounce = classification.bounce
    if bounce is None:
        return
    recipient = (bounce.recipient or message.recipient).lower()
    detail = " ".join(part for part in (bounce.status, bounce.diagnostic) if part)
    kind = EventKind.BOUNCE_HARD if bounce.hard else EventKind.BOUNCE_SOFT
    event_record(
        domain=message.domain,
        kind=kind,
        source_key=f"notice:{kind}:{message.pk}",
        mailbox=message.mailbox,
        recipient=recipient,
        message_id=message.mta_id,
        message_kind=message.kind,
        occurred_at=reply.received_at,
        detail=detail,
        outbound=message,
    )
    if not bounce.hard:
        return
    Suppression.objects.get_or_create(
        workspace_id=message.workspace_id,
        address=recipient,
        defaults={"reason": Suppression.Reason.HARD_BOUNCE, "source": "Bounce notice"},
    )
    _lead_status(reply.lead, LeadStatus.BOUNCED, reply.received_at, open_from=_OPEN_TO_END)
    _stop_waiting(reply.lead, f"Hard bounce ({bounce.status or 'permanent failure'}).")
    Message.objects.filter(
        pk=message.pk,
        state__in=(MessageState.SENDING, MessageState.HANDED_OVER, MessageState.DELIVERED),
    ).update(
        state=MessageState.BOUNCED,
        finished_at=reply.received_at,
        last_error=f"Bounce notice: {detail}"[:500],
    )


def _unsubscribed(reply: Reply, message: Message, classification: Classification) -> None:
    if classification.unsubscribe_token:
        try:
            lead_unsubscribe(token=classification.unsubscribe_token, how="email")
        except ApplicationError:
            logger.info("reply %s: its unsubscribe token is no longer valid", reply.public_id)
        return
    address = message.recipient.lower()
    Suppression.objects.get_or_create(
        workspace_id=message.workspace_id,
        address=address,
        defaults={"reason": Suppression.Reason.UNSUBSCRIBE, "source": "Asked in a reply"},
    )
    _lead_status(reply.lead, LeadStatus.UNSUBSCRIBED, reply.received_at, open_from=_OPEN_TO_END)
    _stop_waiting(reply.lead, "Unsubscribed (asked in a reply).")
    event_record(
        domain=message.domain,
        kind=EventKind.UNSUBSCRIBED,
        source_key=f"unsubscribe:{message.pk}",
        mailbox=message.mailbox,
        recipient=address,
        message_id=message.mta_id,
        message_kind=message.kind,
        occurred_at=reply.received_at,
        detail="Unsubscribed by reply",
        outbound=message,
    )
