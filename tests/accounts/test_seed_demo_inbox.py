"""The demo workspace's inbox and webhook endpoint, as the seed leaves them (run twice)."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from accounts.management.commands.seed_demo import (
    DEMO_CAMPAIGN,
    DEMO_OOO_DAYS,
    DEMO_WEBHOOK_EVENTS,
    DEMO_WEBHOOK_URL,
)
from accounts.models import Workspace
from campaigns.models import Campaign, CampaignLeadState, CampaignSend, LeadStatus
from inbox.models import Reply, ReplyKind
from inbox.selectors import unread_count
from webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db


def snapshot() -> dict[str, object]:
    replies = Reply.objects.order_by("pk")
    return {
        "replies": list(replies.values_list("pk", "kind", "read_at", "lead__status")),
        "labels": [sorted(r.labels.values_list("name", flat=True)) for r in replies],
        "sends": CampaignSend.objects.count(),
        "endpoints": list(WebhookEndpoint.objects.values_list("pk", "active")),
        "deliveries": WebhookDelivery.objects.count(),
    }


def test_the_seed_fills_the_demo_inbox_and_webhooks_once():
    call_command("seed_demo", stdout=StringIO())
    first = snapshot()
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert snapshot() == first
    assert "Skipped" not in out.getvalue()

    workspace = Campaign.objects.select_related("workspace").get(name=DEMO_CAMPAIGN).workspace
    inbox_answers_what_the_campaign_sent(workspace)
    labels_and_read_state(workspace)
    replies_did_to_their_leads_what_the_poll_would(workspace)
    webhook_endpoint_is_listed_but_sends_nothing(workspace)


def inbox_answers_what_the_campaign_sent(workspace: Workspace) -> None:
    replies = list(Reply.objects.filter(workspace=workspace).select_related("in_reply_to"))
    assert 4 <= len(replies) <= 6
    assert Reply.objects.exclude(workspace=workspace).count() == 0
    sent = CampaignSend.objects.filter(campaign__workspace=workspace, campaign__name=DEMO_CAMPAIGN)
    assert {r.in_reply_to_id for r in replies} <= set(sent.values_list("message_id", flat=True))
    for reply in replies:
        assert reply.campaign is not None and reply.campaign.name == DEMO_CAMPAIGN
        assert reply.lead is not None and reply.from_address == reply.lead.email
        assert reply.in_reply_to is not None
        assert reply.in_reply_to.created_at <= reply.received_at
    kinds = sorted(r.kind for r in replies)
    assert kinds == sorted([ReplyKind.HUMAN] * 3 + [ReplyKind.OUT_OF_OFFICE, ReplyKind.AUTO_REPLY])


def labels_and_read_state(workspace: Workspace) -> None:
    replies = Reply.objects.filter(workspace=workspace)
    labelled = {
        r.kind + ":" + name for r in replies for name in r.labels.values_list("name", flat=True)
    }
    assert labelled == {"human:Interested", "human:Meeting booked"}
    unread = replies.filter(read_at__isnull=True)
    assert unread.count() == 1
    only = unread.get()
    assert only.kind == ReplyKind.HUMAN and not only.labels.exists()
    assert unread_count(workspace=workspace) == 1


def replies_did_to_their_leads_what_the_poll_would(workspace: Workspace) -> None:
    for reply in Reply.objects.filter(workspace=workspace, kind=ReplyKind.HUMAN):
        assert reply.lead.status == LeadStatus.REPLIED
        thread = reply.campaign_lead
        assert thread.state == CampaignLeadState.STOPPED
        assert thread.state_reason.startswith("Replied on")

    ooo = Reply.objects.get(workspace=workspace, kind=ReplyKind.OUT_OF_OFFICE)
    back = (ooo.received_at + timedelta(days=DEMO_OOO_DAYS)).date()
    assert ooo.returns_on == back
    assert ooo.lead.status == LeadStatus.OUT_OF_OFFICE
    assert ooo.lead.out_of_office_until == back
    assert ooo.campaign_lead.state == CampaignLeadState.WAITING  # held, its sequence resumes

    auto = Reply.objects.get(workspace=workspace, kind=ReplyKind.AUTO_REPLY)
    assert auto.lead.status == LeadStatus.ACTIVE  # says nothing about the person
    assert auto.campaign_lead.state == CampaignLeadState.WAITING


def webhook_endpoint_is_listed_but_sends_nothing(workspace: Workspace) -> None:
    endpoint = WebhookEndpoint.objects.get(workspace=workspace)
    assert endpoint.url == DEMO_WEBHOOK_URL
    assert endpoint.events == DEMO_WEBHOOK_EVENTS
    assert not endpoint.active and endpoint.disabled_reason
    assert endpoint.created_by is not None and endpoint.secret_encrypted
    assert not WebhookDelivery.objects.exists()
