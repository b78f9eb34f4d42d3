"""Builders for the inbox tests: what a campaign sent, and the Reply rows the poll stores."""

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from accounts.models import Workspace
from campaigns.models import Campaign, CampaignLead, CampaignSend, Lead
from inbox.models import Reply
from sending.models import Mailbox, Message, MessageState
from tests.campaigns import builders

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@dataclass
class World:
    workspace: Workspace
    mailboxes: list[Mailbox]
    campaign: Campaign
    other_campaign: Campaign


def world(workspace: Workspace, domain: str = "acme-sales.com", **domain_kw) -> World:
    """A verified standard domain with two mailboxes and two campaigns (two steps; the first
    step has variants A and B)."""
    sending = builders.sending_domain(workspace, domain, **domain_kw)
    boxes = builders.mailboxes(sending, 2)
    campaign = builders.campaign(
        workspace,
        name="Spring outreach",
        steps=((0, (("Hello {{ company }}", "A"), ("Quick question", "B"))), (2, (("", "F"),))),
        senders=boxes,
    )
    other = builders.campaign(workspace, name="Autumn push", senders=boxes)
    return World(workspace, boxes, campaign, other)


def sent(
    campaign: Campaign,
    email: str,
    *,
    mailbox: Mailbox,
    step: int = 1,
    variant: str = "A",
    subject: str = "Hello Acme",
) -> CampaignSend:
    """A campaign message that went out to `email` (its lead enrolled), as the dispatcher
    records it."""
    workspace = campaign.workspace
    lead, _ = Lead.objects.get_or_create(
        workspace=workspace, email=email, defaults={"first_name": email.split("@")[0].title()}
    )
    campaign_lead, _ = CampaignLead.objects.get_or_create(
        campaign=campaign, lead=lead, defaults={"mailbox": mailbox}
    )
    step_row = campaign.steps.get(position=step)
    variant_row = step_row.variants.get(label=variant) if variant else None
    message = Message.objects.create(
        workspace=workspace,
        domain=mailbox.domain,
        mailbox=mailbox,
        kind="campaign",
        sender=mailbox.address,
        sender_name=mailbox.display_name,
        recipient=email,
        subject=subject,
        text_body=f"Hi {lead.first_name},\n\nA quick note about your team.\n",
        message_id=f"{secrets.token_hex(8)}@{mailbox.domain.name}",
        state=MessageState.DELIVERED,
        created_at=T0,
    )
    if not campaign_lead.thread_message_id:
        campaign_lead.thread_message_id = message.message_id
        campaign_lead.thread_subject = subject
        campaign_lead.save(update_fields=["thread_message_id", "thread_subject"])
    return CampaignSend.objects.create(
        campaign=campaign,
        campaign_lead=campaign_lead,
        step=step_row,
        variant=variant_row,
        mailbox=mailbox,
        message=message,
    )


def reply_to(
    send: CampaignSend,
    *,
    kind: str = "human",
    text: str = "Sounds interesting, tell me more.",
    subject: str | None = None,
    minutes: int = 60,
    read: bool = False,
    from_name: str = "",
) -> Reply:
    """The row the poll stores for a reply to `send`."""
    message = send.message
    assert message is not None
    received = T0 + timedelta(minutes=minutes)
    return Reply.objects.create(
        workspace=send.campaign.workspace,
        mailbox=send.mailbox,
        in_reply_to=message,
        campaign=send.campaign,
        campaign_lead=send.campaign_lead,
        lead=send.campaign_lead.lead,
        kind=kind,
        from_address=message.recipient,
        from_name=from_name,
        subject=subject if subject is not None else f"Re: {message.subject}",
        text=text,
        message_id=f"{secrets.token_hex(6)}@mail.{message.recipient.split('@')[1]}",
        received_at=received,
        read_at=received if read else None,
    )
