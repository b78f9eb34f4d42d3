"""The dispatcher against PostgreSQL and a real SMTP receiver (the SMTP relay transport)."""

import re
import threading
from datetime import UTC, datetime, time, timedelta
from email.utils import parsedate_to_datetime

import pytest
from django.db import connection

from billing.models import CreditAccount, CreditEntry
from campaigns.models import (
    CampaignLead,
    CampaignLeadState,
    CampaignSend,
    CampaignStatus,
    LeadStatus,
)
from campaigns.services.campaigns import campaign_resume
from campaigns.services.dispatch import campaigns_bounce_protect, campaigns_dispatch
from reputation.models import Event
from sending.models import Message, SendingDomain, Suppression
from sending.services.outbound import messages_hand_over
from tests.campaigns import builders
from tests.factories import WorkspaceFactory

# A Wednesday, in the morning UTC; no public holiday anywhere that matters here.
NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def relay(settings, smtp_server):
    settings.OUTBOUND_TRANSPORT = "smtp_relay"
    settings.SMTP_RELAY_HOST, settings.SMTP_RELAY_PORT = smtp_server.host, smtp_server.port
    settings.SMTP_RELAY_IS_KUMOMTA = False
    settings.SITE_URL = "https://app.trustgate.test"
    smtp_server.messages.clear()
    return smtp_server


@pytest.fixture
def workspace(owner):
    builders.paid(owner.workspace, credits=1000)
    return owner.workspace


def three_steps(workspace, senders, emails, **kw):
    leads = builders.lead_list(workspace, emails)
    campaign = builders.campaign(
        workspace,
        steps=(
            (0, (('Hello {{ company | default: "your team" }}', builders.BODY),)),
            (2, (("", "Following up, {{ first_name }}.\n\n{{ unsubscribe_url }}\n"),)),
            (3, (("Last one", "{Closing|Wrapping up} the loop.\n\n{{ unsubscribe_url }}\n"),)),
        ),
        senders=senders,
        lists=[leads],
        status=CampaignStatus.RUNNING,
        **kw,
    )
    CampaignLead.objects.bulk_create(
        CampaignLead(campaign=campaign, lead=lead, next_at=NOW - timedelta(minutes=1))
        for lead in leads.leads.all()
    )
    return campaign


def deliver(now) -> None:
    messages_hand_over(now=now)


def test_a_three_step_sequence_goes_out_threaded_with_merge_fields_and_rfc8058_headers(
    workspace, relay
):
    domain = builders.sending_domain(workspace, "acme-sales.com")
    senders = builders.mailboxes(domain, 5)
    emails = [f"lead{i}.x@prospect{i}.test" for i in range(50)]
    campaign = three_steps(workspace, senders, emails)

    summary = campaigns_dispatch(now=NOW)
    assert (summary.claimed, summary.sent) == (50, 50)
    deliver(NOW)
    first = {m["To"].split("<")[-1].rstrip(">"): m for m in list(relay.messages)}
    assert len(first) == 50
    sample = first["lead7.x@prospect7.test"]
    body = relay.body(sample)
    assert body.startswith("Hi Lead7,") and "note." in body
    assert sample["Subject"] == "Hello your team"
    assert sample["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = re.findall(r"<([^>]+)>", sample["List-Unsubscribe"])
    assert https.startswith("https://app.trustgate.test/u/") and https in body
    assert mailto.startswith("mailto:rep") and "subject=unsubscribe" in mailto
    assert sample["Message-ID"].startswith("<") and sample["Message-ID"].endswith(
        "@acme-sales.com>"
    )
    assert parsedate_to_datetime(sample["Date"]).tzinfo is not None
    # Spintax varies between leads; the rotation spreads them evenly over the 5 mailboxes.
    assert {relay.body(m).splitlines()[2] for m in first.values()} == {"Quick note.", "Short note."}
    per_mailbox = CampaignSend.objects.values_list("mailbox_id", flat=True)
    assert sorted(list(per_mailbox).count(m.pk) for m in senders) == [10] * 5
    assert CreditAccount.objects.get(workspace=workspace).balance == 950

    # Nothing more is due before the follow-up's delay; a second run sends nothing twice.
    assert campaigns_dispatch(now=NOW + timedelta(days=1)).sent == 0
    relay.messages.clear()
    later = NOW + timedelta(days=2, minutes=1)
    assert campaigns_dispatch(now=later).sent == 50
    deliver(later)
    follow = relay.wait_for("lead7.x@prospect7.test")
    assert follow["Subject"] == "Re: Hello your team"
    assert follow["In-Reply-To"] == sample["Message-ID"]
    assert follow["From"] == sample["From"]  # the same mailbox keeps the thread
    assert CampaignSend.objects.filter(campaign=campaign).count() == 100
    assert campaign.status == CampaignStatus.RUNNING
    assert campaigns_dispatch(now=later + timedelta(days=3)).sent == 50
    assert not CampaignLead.objects.exclude(state=CampaignLeadState.FINISHED).exists()
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED  # nothing left waiting


def test_follow_ups_go_before_new_leads_and_the_daily_caps_hold(workspace, relay):
    domain = builders.sending_domain(workspace, "acme-sales.com")
    senders = builders.mailboxes(domain, 2, daily_limit=8)
    campaign = three_steps(
        workspace, senders, [f"p{i}@x{i}.test" for i in range(30)], daily_new_leads=5
    )
    assert campaigns_dispatch(now=NOW).sent == 5  # 5 new leads a day
    day3 = NOW + timedelta(days=2, hours=1)
    summary = campaigns_dispatch(now=day3)
    sends_today = CampaignSend.objects.filter(created_at=day3)
    # 16 = 2 mailboxes x 8: the 5 follow-ups first, then 5 new leads (the new-lead cap).
    assert summary.sent == 10
    assert sends_today.filter(step__position=2).count() == 5
    assert sends_today.filter(step__position=1).count() == 5
    waiting = CampaignLead.objects.filter(campaign=campaign, next_step=1).first()
    assert waiting is not None and "new leads" in waiting.waiting_for


def test_the_mailbox_caps_hold_and_the_lead_waits(workspace, relay):
    domain = builders.sending_domain(workspace, "acme-sales.com")
    senders = builders.mailboxes(domain, 2, daily_limit=3)
    three_steps(workspace, senders, [f"p{i}@x{i}.test" for i in range(10)])
    assert campaigns_dispatch(now=NOW).sent == 6
    held = CampaignLead.objects.filter(next_step=1)
    assert held.count() == 4 and all("No mailbox" in r.waiting_for for r in held)


def test_a_rehab_domain_cannot_send_to_prospects(workspace, relay):
    domain = builders.sending_domain(workspace, "acme-sales.com", tier="rehab", score=55)
    three_steps(workspace, builders.mailboxes(domain, 2), ["a@x.test", "b@y.test"])
    assert campaigns_dispatch(now=NOW).sent == 0
    assert not Message.objects.exists()
    assert CreditAccount.objects.get(workspace=workspace).balance == 1000


def test_no_credit_no_send_and_the_balance_never_goes_negative(workspace, relay):
    CreditAccount.objects.filter(workspace=workspace).update(earned=3, granted=0)
    domain = builders.sending_domain(workspace, "acme-sales.com")
    three_steps(workspace, builders.mailboxes(domain, 2), [f"p{i}@x{i}.test" for i in range(5)])
    assert campaigns_dispatch(now=NOW).sent == 3
    assert CreditAccount.objects.get(workspace=workspace).balance == 0
    held = CampaignLead.objects.filter(next_step=1)
    assert held.count() == 2 and all("No credits" in r.waiting_for for r in held)
    assert Message.objects.count() == 3


def test_the_window_follows_the_leads_time_zone_and_skips_a_holiday(workspace, relay):
    domain = builders.sending_domain(workspace, "acme-sales.com")
    campaign = three_steps(
        workspace,
        builders.mailboxes(domain, 1),
        ["tokyo@x.test", "paris@y.test"],
        window_start=time(9, 0),
        window_end=time(17, 0),
        send_days=[0, 1, 2, 3, 4],
        holiday_country="FR",
    )
    campaign.leads.filter(lead__email="tokyo@x.test").update()
    from campaigns.models import Lead

    Lead.objects.filter(email="tokyo@x.test").update(time_zone="Asia/Tokyo")
    Lead.objects.filter(email="paris@y.test").update(time_zone="Europe/Paris")
    # 10:00 UTC is 19:00 in Tokyo (closed) and 11:00 in Paris (open).
    assert campaigns_dispatch(now=NOW).sent == 1
    tokyo = CampaignLead.objects.get(lead__email="tokyo@x.test")
    assert tokyo.next_at == datetime(2026, 12, 3, 0, 0, tzinfo=UTC)  # 09:00 in Tokyo
    # Christmas Day is a French public holiday: nothing goes that day.
    christmas = datetime(2026, 12, 25, 10, 0, tzinfo=UTC)
    CampaignLead.objects.filter(pk=tokyo.pk).update(next_at=christmas)
    Lead.objects.filter(email="tokyo@x.test").update(time_zone="Europe/Paris")
    assert campaigns_dispatch(now=christmas).sent == 0
    tokyo.refresh_from_db()
    assert tokyo.next_at.date().isoformat() == "2026-12-28"  # the next working day


def test_a_one_click_post_unsubscribes_at_once_without_login(workspace, relay, client):
    domain = builders.sending_domain(workspace, "acme-sales.com")
    three_steps(workspace, builders.mailboxes(domain, 1), ["lee@prospect.test"])
    campaigns_dispatch(now=NOW)
    deliver(NOW)
    received = relay.wait_for("lee@prospect.test")
    url = re.findall(r"<([^>]+)>", received["List-Unsubscribe"])[0]
    path = url.removeprefix("https://app.trustgate.test")
    page = client.get(path)
    assert page.status_code == 200 and b"lee@prospect.test" in page.content
    response = client.post(path, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and b"unsubscribed" in response.content
    assert Suppression.objects.filter(
        workspace=workspace, address="lee@prospect.test", reason="unsubscribe"
    ).exists()
    row = CampaignLead.objects.get()
    assert row.state == CampaignLeadState.STOPPED and row.lead.status == LeadStatus.UNSUBSCRIBED
    assert Event.objects.filter(kind="unsubscribed", recipient="lee@prospect.test").count() == 1
    assert client.post(path, {"List-Unsubscribe": "One-Click"}).status_code == 200  # a repeat
    assert Event.objects.filter(kind="unsubscribed").count() == 1
    assert campaigns_dispatch(now=NOW + timedelta(days=5)).sent == 0
    forged = client.post(path[:-3] + "xx/", {"List-Unsubscribe": "One-Click"})
    assert forged.status_code == 404
    assert Suppression.objects.count() == 1


def test_a_suppressed_address_or_domain_is_never_sent_to(workspace, relay):
    domain = builders.sending_domain(workspace, "acme-sales.com")
    three_steps(
        workspace, builders.mailboxes(domain, 1), ["gone@x.test", "any@rival.test", "ok@y.test"]
    )
    Suppression.objects.create(workspace=workspace, address="gone@x.test", reason="hard_bounce")
    from sending.models import SuppressedDomain

    SuppressedDomain.objects.create(workspace=workspace, domain="rival.test")
    assert campaigns_dispatch(now=NOW).sent == 1
    stopped = CampaignLead.objects.filter(state=CampaignLeadState.STOPPED)
    assert sorted(r.lead.email for r in stopped) == ["any@rival.test", "gone@x.test"]


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_racing_never_send_a_step_twice_nor_overspend():
    workspace = WorkspaceFactory()
    builders.paid(workspace, credits=30)
    domain = builders.sending_domain(workspace, "acme-sales.com")
    three_steps(workspace, builders.mailboxes(domain, 5), [f"p{i}@x{i}.test" for i in range(40)])
    barrier = threading.Barrier(2)
    results = []

    def run():
        try:
            barrier.wait()
            results.append(campaigns_dispatch(now=NOW, limit=25).sent)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert CampaignSend.objects.count() == Message.objects.count() == sum(results) <= 30
    assert CampaignSend.objects.values("campaign_lead", "step").distinct().count() == sum(results)
    assert CreditAccount.objects.get(workspace=workspace).balance == 30 - sum(results) >= 0
    assert CreditEntry.objects.filter(workspace=workspace, kind="spend").count() == sum(results)


def test_bounce_protection_trips_above_its_line_and_not_at_it(
    workspace, relay, owner, mailoutbox, django_capture_on_commit_callbacks
):
    domain = builders.sending_domain(workspace, "acme-sales.com")
    campaign = three_steps(
        workspace, builders.mailboxes(domain, 5), [f"p{i}@x{i}.test" for i in range(100)]
    )
    campaigns_dispatch(now=NOW)
    sends = list(CampaignSend.objects.select_related("message")[:3])

    def bounce(send):
        Event.objects.create(
            domain=domain,
            kind="bounce_hard",
            recipient=send.message.recipient,
            occurred_at=NOW,
            source_key=f"test-bounce-{send.pk}",
            outbound=send.message,
        )

    bounce(sends[0])
    bounce(sends[1])
    assert campaigns_bounce_protect() == []
    bounce(sends[2])
    with django_capture_on_commit_callbacks(execute=True):
        assert campaigns_bounce_protect() == [campaign.public_id]
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED and campaign.paused_by_system
    assert campaign.status_reason.startswith("Bounce protection: 3 hard bounces")
    assert any("Campaign paused" in m.subject for m in mailoutbox)
    assert campaigns_dispatch(now=NOW + timedelta(days=3)).sent == 0

    # Resumed with the customer's acknowledgement: the bounces dealt with are not counted
    # again, new ones are.
    campaign_resume(
        campaign=campaign, actor=owner.user, acknowledge=True, now=NOW + timedelta(days=3)
    )
    assert campaigns_bounce_protect() == []
    # (events made by hand here: the real hook would also have suppressed those three)
    assert campaigns_dispatch(now=NOW + timedelta(days=3, minutes=1)).sent == 100
    later = list(CampaignSend.objects.filter(step__position=2).select_related("message")[:3])
    for send in later[:2]:
        bounce(send)
    assert campaigns_bounce_protect() == []
    bounce(later[2])
    assert campaigns_bounce_protect() == [campaign.public_id]


def test_another_workspaces_mailbox_is_never_used(workspace, relay):
    theirs = builders.sending_domain(WorkspaceFactory(), "other-co.com")
    three_steps(workspace, builders.mailboxes(theirs, 1), ["a@x.test"])
    assert campaigns_dispatch(now=NOW).sent == 0
    assert SendingDomain.objects.get(name="other-co.com").messages.count() == 0


def test_a_message_that_cannot_be_written_stops_its_lead_refunds_and_the_rest_go(workspace, relay):
    domain = builders.sending_domain(workspace, "acme-sales.com")
    three_steps(workspace, builders.mailboxes(domain, 2), ["ok@x.test", "also@y.test"])
    from campaigns.models import Lead

    Lead.objects.filter(email="also@y.test").update(email="not an address")
    assert campaigns_dispatch(now=NOW).sent == 1
    bad = CampaignLead.objects.get(lead__email="not an address")
    assert bad.state == CampaignLeadState.STOPPED and "could not be sent" in bad.state_reason
    assert CreditAccount.objects.get(workspace=workspace).balance == 999
    assert Message.objects.get().recipient == "ok@x.test"


@pytest.mark.parametrize("stop_on_reply", [True, False])
def test_a_lead_that_replied_stops_only_where_the_campaign_says_so(workspace, relay, stop_on_reply):
    domain = builders.sending_domain(workspace, "acme-sales.com")
    three_steps(
        workspace, builders.mailboxes(domain, 1), ["ann@x.test"], stop_on_reply=stop_on_reply
    )
    from campaigns.models import Lead

    Lead.objects.filter(email="ann@x.test").update(status=LeadStatus.REPLIED)
    summary = campaigns_dispatch(now=NOW)
    assert (summary.sent, summary.stopped) == ((0, 1) if stop_on_reply else (1, 0))


def test_campaign_messages_get_a_tracked_html_part_with_the_unsubscribe_link_untouched(
    workspace, relay
):
    domain = builders.sending_domain(workspace, "acme-sales.com")
    three_steps(workspace, builders.mailboxes(domain, 1), ["ann@x.test"])
    assert campaigns_dispatch(now=NOW).sent == 1
    message = Message.objects.get()
    assert "/t/o/" in message.html_body  # the open pixel
    unsubscribe = re.search(r"https://app\.trustgate\.test/u/[^\s<\"]+", message.text_body)
    assert unsubscribe and unsubscribe.group(0) in message.html_body  # not rewritten
