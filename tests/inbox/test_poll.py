"""Reply detection against the real Dovecot: a campaign is dispatched, answers are put in the
sending mailbox's INBOX over IMAP, and the poll reads, matches, classifies and applies them."""

import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from accounts.crypto import secret_encrypt
from campaigns.models import CampaignLead, CampaignLeadState, CampaignStatus, LeadStatus
from campaigns.services.dispatch import campaigns_dispatch, unsubscribe_token
from inbox.models import MailboxPoll, Reply
from inbox.services.poll import mailbox_replies_poll, replies_poll_due
from reputation.models import Event, EventKind
from sending.models import Mailbox, Message, MessageKind, Suppression
from tests.campaigns import builders

CORPUS = Path(__file__).parent / "corpus"
PLACEHOLDER_ID = b"b3f1c2d4e5a6f7081920a1b2c3d4e5f6@acme-sales.com"
NOW = datetime(2026, 12, 14, 10, 0, tzinfo=UTC)  # a Monday
LATER = NOW + timedelta(days=1)


def imap_mailbox(domain, servers, account, *, local_part="alex", password=None) -> Mailbox:
    dovecot, _smtp = servers
    return Mailbox.objects.create(
        domain=domain,
        local_part=local_part,
        connection="external",
        imap_host=dovecot.host,
        imap_port=dovecot.port,
        imap_security="starttls",
        imap_username=account.address,
        imap_password_encrypted=secret_encrypt(password or account.password),
        smtp_host="127.0.0.1",
        smtp_port=25,
        smtp_security="starttls",
        smtp_username=account.address,
        smtp_password_encrypted=secret_encrypt(account.password),
        connection_ok=True,
    )


@pytest.fixture
def outreach(owner, mail_servers, mail_account):
    """A running two-step campaign from a mailbox on the test Dovecot; step 1 sent to two
    leads at NOW."""
    workspace = owner.workspace
    builders.paid(workspace, credits=100)
    domain = builders.sending_domain(workspace, "acme-sales.com")
    mailbox = imap_mailbox(domain, mail_servers, mail_account)
    leads = builders.lead_list(workspace, ["dana.lee@prospect-co.test", "sam@other.test"])
    campaign = builders.campaign(
        workspace,
        steps=((0, (("Hello", builders.BODY),)), (2, (("", "Following up.\n"),))),
        senders=[mailbox],
        lists=[leads],
        status=CampaignStatus.RUNNING,
    )
    CampaignLead.objects.bulk_create(
        CampaignLead(campaign=campaign, lead=lead, next_at=NOW - timedelta(minutes=1))
        for lead in leads.leads.all()
    )
    assert campaigns_dispatch(now=NOW).sent == 2
    return mailbox, campaign


def sent_to(address: str) -> Message:
    return Message.objects.get(recipient=address, kind=MessageKind.CAMPAIGN)


def deliver(dovecot, account, name: str, message: Message | None, **replace: bytes) -> None:
    raw = (CORPUS / name).read_bytes()
    if message is not None:
        raw = raw.replace(PLACEHOLDER_ID, message.message_id.encode())
    for old, new in replace.items():
        raw = raw.replace(old.encode(), new)
    dovecot.append(account.address, raw)


def thread_of(address: str) -> CampaignLead:
    return CampaignLead.objects.select_related("lead").get(lead__email=address)


def test_a_human_reply_stops_that_leads_sequence_and_counts_once(
    outreach, mail_servers, mail_account
):
    mailbox, campaign = outreach
    dovecot, _ = mail_servers
    message = sent_to("dana.lee@prospect-co.test")
    deliver(dovecot, mail_account, "01_gmail_reply.eml", message)

    result = mailbox_replies_poll(mailbox_id=mailbox.pk, now=LATER)

    assert (result.claimed, result.read, result.stored, result.error) == (True, 1, 1, "")
    reply = Reply.objects.get()
    assert reply.kind == "human"
    assert (reply.in_reply_to, reply.campaign, reply.lead.email) == (
        message,
        campaign,
        "dana.lee@prospect-co.test",
    )
    assert reply.from_address == "dana.lee@prospect-co.test"
    assert reply.text.startswith("Hi Alex")
    assert "wrote:" not in reply.text
    row = thread_of("dana.lee@prospect-co.test")
    assert row.state == CampaignLeadState.STOPPED
    assert row.state_reason == "Replied on 15 Dec 2026."
    assert row.lead.status == LeadStatus.REPLIED
    event = Event.objects.get(kind=EventKind.REPLIED)
    assert event.outbound == message
    # The other lead carries on.
    assert thread_of("sam@other.test").state == CampaignLeadState.WAITING

    again = mailbox_replies_poll(mailbox_id=mailbox.pk, now=LATER + timedelta(minutes=5))
    assert (again.read, again.stored) == (0, 0)
    assert Event.objects.filter(kind=EventKind.REPLIED).count() == 1


def test_an_out_of_office_holds_the_lead_until_its_return_date_then_it_resumes(
    outreach, mail_servers, mail_account
):
    mailbox, _campaign = outreach
    dovecot, _ = mail_servers
    deliver(dovecot, mail_account, "03_ooo_en_back_on.eml", sent_to("dana.lee@prospect-co.test"))

    assert mailbox_replies_poll(mailbox_id=mailbox.pk, now=LATER).stored == 1

    row = thread_of("dana.lee@prospect-co.test")
    assert row.lead.status == LeadStatus.OUT_OF_OFFICE
    assert row.lead.out_of_office_until == date(2027, 1, 12)
    assert row.state == CampaignLeadState.WAITING  # held, not stopped
    assert Reply.objects.get().returns_on == date(2027, 1, 12)
    assert not Event.objects.filter(kind=EventKind.REPLIED).exists()

    step_two = NOW + timedelta(days=2, minutes=1)
    summary = campaigns_dispatch(now=step_two)
    assert summary.sent == 1  # only the other lead
    row.refresh_from_db()
    assert row.next_at == datetime(2027, 1, 12, tzinfo=UTC)
    assert row.waiting_for == "Out of office until 2027-01-12."

    back = datetime(2027, 1, 12, 9, 0, tzinfo=UTC)
    assert campaigns_dispatch(now=back).sent == 1
    row.refresh_from_db()
    assert row.next_step == 3


def test_a_delivery_status_notice_counts_a_hard_bounce_for_the_right_message(
    outreach, mail_servers, mail_account
):
    mailbox, _campaign = outreach
    dovecot, _ = mail_servers
    message = sent_to("dana.lee@prospect-co.test")
    deliver(dovecot, mail_account, "12_dsn_postfix_hard.eml", message)

    assert mailbox_replies_poll(mailbox_id=mailbox.pk, now=LATER).stored == 1

    event = Event.objects.get(kind=EventKind.BOUNCE_HARD)
    assert (event.outbound, event.recipient) == (message, "dana.lee@prospect-co.test")
    assert Suppression.objects.filter(
        workspace=mailbox.domain.workspace,
        address="dana.lee@prospect-co.test",
        reason="hard_bounce",
    ).exists()
    row = thread_of("dana.lee@prospect-co.test")
    assert row.lead.status == LeadStatus.BOUNCED
    assert row.state == CampaignLeadState.STOPPED
    assert Reply.objects.get().bounce_hard is True
    other = sent_to("sam@other.test")
    assert not Event.objects.filter(outbound=other).exists()

    # A new UIDVALIDITY makes the poll read the folder again: nothing is counted twice.
    MailboxPoll.objects.filter(mailbox=mailbox).update(uidvalidity=1)
    again = mailbox_replies_poll(mailbox_id=mailbox.pk, now=LATER + timedelta(hours=1))
    assert (again.read, again.stored) == (1, 0)
    assert Event.objects.filter(kind=EventKind.BOUNCE_HARD).count() == 1


def test_a_notice_about_another_recipient_is_not_trusted(outreach, mail_servers, mail_account):
    mailbox, _campaign = outreach
    dovecot, _ = mail_servers
    # The original's id is ours, but the failed address is not whom that message went to.
    deliver(dovecot, mail_account, "12_dsn_postfix_hard.eml", sent_to("sam@other.test"))
    result = mailbox_replies_poll(mailbox_id=mailbox.pk, now=LATER)
    assert (result.read, result.stored, result.ignored) == (1, 0, 1)
    assert not Event.objects.filter(kind=EventKind.BOUNCE_HARD).exists()


def test_an_auto_reply_does_not_stop_the_sequence(outreach, mail_servers, mail_account):
    mailbox, _campaign = outreach
    dovecot, _ = mail_servers
    deliver(dovecot, mail_account, "09_autoreply_rfc3834_ticket.eml", sent_to("sam@other.test"))

    assert mailbox_replies_poll(mailbox_id=mailbox.pk, now=LATER).kinds == {"auto_reply": 1}

    row = thread_of("sam@other.test")
    assert row.state == CampaignLeadState.WAITING
    assert row.lead.status == LeadStatus.ACTIVE
    assert not Event.objects.filter(kind=EventKind.REPLIED).exists()


def test_an_auto_reply_stops_the_sequence_where_the_campaign_says_so(
    outreach, mail_servers, mail_account
):
    mailbox, campaign = outreach
    dovecot, _ = mail_servers
    campaign.stop_on_auto_reply = True
    campaign.save(update_fields=["stop_on_auto_reply"])
    deliver(dovecot, mail_account, "09_autoreply_rfc3834_ticket.eml", sent_to("sam@other.test"))

    assert mailbox_replies_poll(mailbox_id=mailbox.pk, now=LATER).kinds == {"auto_reply": 1}

    row = thread_of("sam@other.test")
    assert (row.state, row.state_reason) == (CampaignLeadState.STOPPED, "Automatic reply.")
    assert row.lead.status == LeadStatus.ACTIVE  # not a reply from the person
    assert thread_of("dana.lee@prospect-co.test").state == CampaignLeadState.WAITING


def test_an_out_of_office_stops_the_sequence_in_a_campaign_set_to_stop(
    outreach, mail_servers, mail_account
):
    mailbox, campaign = outreach
    dovecot, _ = mail_servers
    campaign.out_of_office = "stop"
    campaign.save(update_fields=["out_of_office"])
    deliver(dovecot, mail_account, "03_ooo_en_back_on.eml", sent_to("dana.lee@prospect-co.test"))

    assert mailbox_replies_poll(mailbox_id=mailbox.pk, now=LATER).kinds == {"out_of_office": 1}

    row = thread_of("dana.lee@prospect-co.test")
    assert row.state == CampaignLeadState.STOPPED
    assert "until 12 Jan 2027" in row.state_reason
    assert row.lead.out_of_office_until == date(2027, 1, 12)
    assert campaigns_dispatch(now=datetime(2027, 1, 12, 9, 0, tzinfo=UTC)).sent == 1  # sam only
    assert (
        not Message.objects.filter(recipient="dana.lee@prospect-co.test")
        .exclude(pk=sent_to("dana.lee@prospect-co.test").pk)
        .exists()
    )


def test_a_reply_in_words_asking_to_be_removed_unsubscribes(outreach, mail_servers, mail_account):
    mailbox, _campaign = outreach
    dovecot, _ = mail_servers
    deliver(dovecot, mail_account, "16_unsubscribe_please_remove.eml", sent_to("sam@other.test"))

    mailbox_replies_poll(mailbox_id=mailbox.pk, now=LATER)

    row = thread_of("sam@other.test")
    assert row.lead.status == LeadStatus.UNSUBSCRIBED
    assert row.state == CampaignLeadState.STOPPED
    assert Suppression.objects.filter(address="sam@other.test", reason="unsubscribe").exists()
    assert Event.objects.filter(kind=EventKind.UNSUBSCRIBED).count() == 1


def test_the_mailto_unsubscribe_with_its_signed_token_unsubscribes(
    outreach, mail_servers, mail_account
):
    mailbox, _campaign = outreach
    dovecot, _ = mail_servers
    row = thread_of("dana.lee@prospect-co.test")
    deliver(
        dovecot,
        mail_account,
        "20_unsubscribe_mailto.eml",
        None,
        **{"42:Xq3v0R9wYkTn2sJp8LmZbC4dE6f": unsubscribe_token(row.pk).encode()},
    )
    # A token whose signature does not check out is ignored.
    deliver(
        dovecot,
        mail_account,
        "20_unsubscribe_mailto.eml",
        None,
        **{
            "42:Xq3v0R9wYkTn2sJp8LmZbC4dE6f": f"{row.pk}:forgedsignature000".encode(),
            "mailto-unsub.1": b"mailto-unsub.2",
        },
    )

    result = mailbox_replies_poll(mailbox_id=mailbox.pk, now=LATER)

    assert (result.read, result.stored) == (2, 1)
    row.refresh_from_db()
    row.lead.refresh_from_db()
    assert row.lead.status == LeadStatus.UNSUBSCRIBED
    assert row.state == CampaignLeadState.STOPPED
    assert Reply.objects.get().kind == "unsubscribe"


def test_replies_to_another_workspace_or_to_nothing_are_ignored(
    outreach, mail_servers, mail_account, stranger
):
    mailbox, _campaign = outreach
    dovecot, _ = mail_servers
    theirs_domain = builders.sending_domain(stranger.workspace, "stranger-sales.com")
    theirs = Message.objects.create(
        workspace=stranger.workspace,
        domain=theirs_domain,
        kind=MessageKind.CAMPAIGN,
        sender="bob@stranger-sales.com",
        recipient="dana.lee@prospect-co.test",
        message_id="f00dfeed00000000000000000000beef@stranger-sales.com",
    )
    deliver(dovecot, mail_account, "01_gmail_reply.eml", theirs)
    deliver(
        dovecot,
        mail_account,
        "02_outlook_reply.eml",
        None,
        **{PLACEHOLDER_ID.decode(): b"never-sent-0001@acme-sales.com"},
    )

    result = mailbox_replies_poll(mailbox_id=mailbox.pk, now=LATER)

    assert (result.read, result.stored, result.ignored) == (2, 0, 2)
    assert not Reply.objects.exists()
    assert thread_of("dana.lee@prospect-co.test").state == CampaignLeadState.WAITING
    assert MailboxPoll.objects.get(mailbox=mailbox).last_uid == 2


def test_uids_are_read_once_and_new_mail_is_picked_up(outreach, mail_servers, mail_account):
    mailbox, _campaign = outreach
    dovecot, _ = mail_servers
    deliver(dovecot, mail_account, "09_autoreply_rfc3834_ticket.eml", sent_to("sam@other.test"))
    first = mailbox_replies_poll(mailbox_id=mailbox.pk, now=LATER)
    deliver(dovecot, mail_account, "01_gmail_reply.eml", sent_to("dana.lee@prospect-co.test"))
    second = mailbox_replies_poll(mailbox_id=mailbox.pk, now=LATER + timedelta(minutes=3))

    assert (first.read, second.read) == (1, 1)
    assert second.kinds == {"human": 1}
    poll = MailboxPoll.objects.get(mailbox=mailbox)
    assert poll.last_uid == 2
    assert poll.uidvalidity
    assert Reply.objects.count() == 2


def test_a_held_claim_keeps_a_second_poll_out(outreach, mail_servers, mail_account):
    mailbox, _campaign = outreach
    dovecot, _ = mail_servers
    deliver(dovecot, mail_account, "01_gmail_reply.eml", sent_to("dana.lee@prospect-co.test"))
    MailboxPoll.objects.create(mailbox=mailbox, claimed_until=LATER + timedelta(minutes=5))

    blocked = mailbox_replies_poll(mailbox_id=mailbox.pk, now=LATER)
    assert (blocked.claimed, blocked.read) == (False, 0)
    assert not Reply.objects.exists()

    # A claim that outlived its time (a dead worker) is taken over.
    taken = mailbox_replies_poll(mailbox_id=mailbox.pk, now=LATER + timedelta(minutes=6))
    assert (taken.claimed, taken.stored) == (True, 1)
    assert MailboxPoll.objects.get(mailbox=mailbox).claimed_until is None


@pytest.mark.django_db(transaction=True)
def test_two_polls_racing_on_one_mailbox_read_each_message_once(
    outreach, mail_servers, mail_account
):
    mailbox, _campaign = outreach
    dovecot, _ = mail_servers
    deliver(dovecot, mail_account, "01_gmail_reply.eml", sent_to("dana.lee@prospect-co.test"))
    deliver(dovecot, mail_account, "09_autoreply_rfc3834_ticket.eml", sent_to("sam@other.test"))
    results = []
    start = threading.Barrier(2)

    def poll() -> None:
        try:
            start.wait()
            results.append(mailbox_replies_poll(mailbox_id=mailbox.pk, now=LATER))
        finally:
            connection.close()

    threads = [threading.Thread(target=poll) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r.read for r in results) == 2
    assert sum(r.claimed for r in results) >= 1
    assert Reply.objects.count() == 2
    assert Event.objects.filter(kind=EventKind.REPLIED).count() == 1


def test_an_imap_login_failure_is_recorded_with_a_backoff_not_raised(
    owner, mail_servers, mail_account
):
    domain = builders.sending_domain(owner.workspace, "acme-sales.com")
    mailbox = imap_mailbox(domain, mail_servers, mail_account, password="wrong-password")

    first = mailbox_replies_poll(mailbox_id=mailbox.pk, now=LATER)
    second = mailbox_replies_poll(mailbox_id=mailbox.pk, now=LATER + timedelta(minutes=3))

    assert "check the IMAP username and password" in first.error
    poll = MailboxPoll.objects.get(mailbox=mailbox)
    assert poll.failures == 2
    assert "Reading replies failed" in poll.last_error
    assert poll.next_poll_at == LATER + timedelta(minutes=3) + timedelta(minutes=4)
    assert poll.claimed_until is None
    assert second.claimed


def test_the_tick_polls_every_campaign_mailbox_that_is_due(outreach, mail_servers, mail_account):
    mailbox, _campaign = outreach
    dovecot, _ = mail_servers
    deliver(dovecot, mail_account, "01_gmail_reply.eml", sent_to("dana.lee@prospect-co.test"))

    assert replies_poll_due(now=LATER) == 1  # tasks run eagerly in tests (at the real time)

    poll = MailboxPoll.objects.get(mailbox=mailbox)
    assert poll.last_polled_at is not None
    assert poll.claimed_until is None
    assert Reply.objects.count() == 1
    assert replies_poll_due(now=timezone.now()) == 0  # not due again yet
    assert replies_poll_due(now=timezone.now() + timedelta(minutes=3)) == 1
