"""A campaign's numbers per step and variant, and the campaign list's counts (no N+1)."""

from datetime import UTC, datetime, timedelta

import pytest

from campaigns.models import CampaignLead, CampaignSend, CampaignStatus
from campaigns.selectors.campaigns import campaign_get, campaign_list, campaign_stats
from campaigns.services.dispatch import campaigns_dispatch, unsubscribe_token
from campaigns.services.unsubscribe import lead_unsubscribe
from inbox.models import Reply, ReplyKind
from inbox.services.inbox import reply_labels_ensure
from reputation.models import Event, EventKind
from sending.models import Message, MessageState
from tests.campaigns import builders
from tracking.models import Click, TrackedLink

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
BODY = "Hi\n{{ unsubscribe_url }}"


@pytest.fixture
def workspace(owner):
    builders.paid(owner.workspace, credits=1000)
    return owner.workspace


@pytest.fixture
def sent(workspace, settings):
    """A running two-step campaign (step 1 with variants A and B) whose first step went to
    eight leads."""
    settings.OUTBOUND_TRANSPORT = "smtp_relay"
    domain = builders.sending_domain(workspace, "acme-sales.com")
    leads = builders.lead_list(workspace, [f"p{i}@prospect.test" for i in range(8)])
    campaign = builders.campaign(
        workspace,
        steps=((0, (("Hi A", BODY), ("Hi B", BODY))), (2, (("", BODY),))),
        senders=builders.mailboxes(domain, 2),
        lists=[leads],
        status=CampaignStatus.RUNNING,
    )
    CampaignLead.objects.bulk_create(
        CampaignLead(campaign=campaign, lead=lead, next_at=NOW) for lead in leads.leads.all()
    )
    assert campaigns_dispatch(now=NOW).sent == 8
    return campaign


def event(message: Message, kind: str, key: str) -> None:
    Event.objects.create(
        domain=message.domain,
        kind=kind,
        recipient=message.recipient,
        occurred_at=NOW,
        source_key=key,
        outbound=message,
    )


def click(message: Message, *, machine: bool = False) -> None:
    link, _ = TrackedLink.objects.get_or_create(
        message=message, position=0, defaults={"url": "https://acme.test/"}
    )
    Click.objects.create(message=message, link=link, machine=machine)


def reply(message: Message, *, kind: str = ReplyKind.HUMAN, label: str = "", at=NOW) -> Reply:
    send = message.campaign_send
    answer = Reply.objects.create(
        workspace_id=message.workspace_id,
        in_reply_to=message,
        campaign_id=send.campaign_id,
        campaign_lead_id=send.campaign_lead_id,
        kind=kind,
        from_address=message.recipient,
        message_id=f"<r{message.pk}-{kind}@prospect.test>",
        received_at=at,
    )
    if label:
        labels = {row.system: row for row in reply_labels_ensure(workspace=message.workspace)}
        answer.labels.add(labels[label])
    return answer


def test_numbers_per_step_and_variant_come_from_message_states_and_events(sent):
    sends = list(
        CampaignSend.objects.filter(campaign=sent)
        .select_related("variant", "message__domain")
        .order_by("id")
    )
    a = [s for s in sends if s.variant.label == "A"]
    b = [s for s in sends if s.variant.label == "B"]
    assert (len(a), len(b)) == (4, 4)
    Message.objects.filter(pk__in=[s.message_id for s in a[:3]]).update(
        state=MessageState.DELIVERED
    )
    Message.objects.filter(pk=a[3].message_id).update(state=MessageState.BOUNCED)
    event(b[0].message, EventKind.BOUNCE_HARD, "t1")  # a bounce reported before the state moved
    event(a[0].message, EventKind.OPENED, "t2")
    event(a[1].message, EventKind.OPENED, "t3")
    event(a[1].message, EventKind.REPLIED, "t4")
    Message.objects.filter(pk=b[1].message_id).update(state=MessageState.FAILED)  # not sent
    lead_unsubscribe(token=unsubscribe_token(a[2].campaign_lead_id))
    click(a[0].message)
    click(a[0].message)  # twice: one clicked message
    click(a[2].message, machine=True)  # a scanner: not counted
    reply(a[1].message, label="interested")
    reply(a[0].message, kind=ReplyKind.OUT_OF_OFFICE, label="interested")  # not a person's reply
    click(b[2].message)

    stats = campaign_stats(campaign=sent, now=NOW)
    first, second = stats.steps
    variant_a, variant_b = first.variants
    assert variant_a.numbers.as_dict() == {
        "sent": 4,
        "delivered": 3,
        "bounced": 1,
        "opened": 2,
        "clicked": 1,
        "replied": 1,
        "positive": 1,
        "unsubscribed": 1,
        "delivery_rate": 75.0,
        "bounce_rate": 25.0,
        "open_rate": 50.0,
        "click_rate": 25.0,
        "reply_rate": 25.0,
        "positive_rate": 25.0,
        "unsubscribe_rate": 25.0,
    }
    assert (variant_b.numbers.sent, variant_b.numbers.bounced) == (3, 1)
    assert first.numbers.sent == 7 and second.numbers.sent == 0
    assert second.numbers.bounce_rate is None
    assert stats.totals.sent == 7 and stats.totals.unsubscribed == 1
    assert (variant_b.numbers.clicked, variant_b.numbers.positive) == (1, 0)
    assert (stats.totals.clicked, stats.totals.positive) == (2, 1)
    assert stats.leads["waiting"] + stats.leads["stopped"] == 8


def test_the_daily_series_covers_30_days_in_the_campaigns_zone(sent):
    first = CampaignSend.objects.filter(campaign=sent).order_by("id").first()
    CampaignSend.objects.filter(pk=first.pk).update(created_at=NOW - timedelta(days=3))
    reply(first.message, at=NOW - timedelta(days=1))
    reply(first.message, kind=ReplyKind.AUTO_REPLY, at=NOW)  # not a person: not in the series
    stats = campaign_stats(campaign=sent, now=NOW)
    assert len(stats.daily) == 30
    assert stats.daily[-1] == (NOW.date(), 7, 0)
    assert stats.daily[-2] == ((NOW - timedelta(days=1)).date(), 0, 1)
    assert stats.daily[-4] == ((NOW - timedelta(days=3)).date(), 1, 0)
    assert sum(point.sent for point in stats.daily) == 8


def test_a_campaign_with_nothing_sent_has_zero_numbers(workspace):
    campaign = builders.campaign(workspace)
    stats = campaign_stats(campaign=campaign, now=NOW)
    assert stats.totals.sent == 0 and stats.totals.delivery_rate is None
    assert [s.position for s in stats.steps] == [1]
    assert sum(point.sent + point.replied for point in stats.daily) == 0


def test_the_list_counts_leads_and_sends_without_n_plus_1(
    workspace, sent, stranger, django_assert_max_num_queries
):
    draft_list = builders.lead_list(workspace, ["x@p.test", "y@p.test"], name="Draft list")
    for i in range(5):
        builders.campaign(workspace, name=f"Draft {i}", lists=[draft_list])
    builders.campaign(stranger.workspace, name="Theirs")
    with django_assert_max_num_queries(1):
        rows = list(campaign_list(workspace=workspace))
    assert len(rows) == 6
    running = next(c for c in rows if c.pk == sent.pk)
    assert (running.lead_count, running.sent_count, running.step_count) == (8, 8, 2)
    assert running.mailbox_count == 2
    draft = next(c for c in rows if c.name == "Draft 0")
    assert (draft.lead_count, draft.sent_count) == (2, 0)


def test_another_workspaces_campaign_is_not_found(sent, stranger):
    with pytest.raises(sent.DoesNotExist):
        campaign_get(workspace=stranger.workspace, public_id=sent.public_id)
    assert campaign_get(workspace=sent.workspace, public_id=sent.public_id) == sent
