"""Every transport of a mailbox connected with OAuth logs in with XOAUTH2: the hand-over of
campaign and warm-up mail through its own SMTP server, the reply poll and the warm-up agent
over IMAP. Against the loopback identity provider, Dovecot and the SMTP server; the mailbox
has no password stored, so only its access token can open a session."""

import random
import secrets
from datetime import timedelta
from email.message import EmailMessage

import pytest
from django.db import connection
from django.utils import timezone

from accounts.crypto import secret_encrypt
from inbox.models import MailboxPoll, Reply
from inbox.services.poll import mailbox_replies_poll
from sending.models import (
    GrantStatus,
    Mailbox,
    MailboxGrant,
    MailboxStatus,
    Message,
    MessageKind,
    MessageState,
    SendingDomain,
)
from sending.services.outbound import MessageDraft, messages_hand_over, messages_reserve
from warming.content import warmup_code, warmup_headers
from warming.models import Placement, Step, WarmupSend, WarmupSettings
from warming.services.agent import warming_engage

REVOKED = "Google access was revoked or has expired: reconnect with Google."


def reserve(mailbox: Mailbox, recipient: str, kind: str = MessageKind.CAMPAIGN, **kw) -> Message:
    (message,) = messages_reserve(
        drafts=[
            MessageDraft(
                mailbox=mailbox,
                kind=kind,
                recipient=recipient,
                subject=kw.pop("subject", "Quick question"),
                text_body=kw.pop("text_body", "Hi Lee,\n\nworth a chat?\n"),
                campaign_ref=kw.pop("campaign_ref", "cmp_1"),
                **kw,
            )
        ],
        enqueue=False,
    )
    return message


def prospect() -> str:
    return f"lee-{secrets.token_hex(4)}@prospect.test"


def arrived(smtp, message: Message):
    received = smtp.wait_for(message.recipient)
    assert received.message["Message-ID"] == f"<{message.message_id}>"
    assert received.mail_from == message.sender
    return received


@pytest.fixture
def campaigns(connected: Mailbox) -> Mailbox:
    """The OAuth mailbox's domain may send campaigns; only its token can log in to SMTP."""
    SendingDomain.objects.filter(pk=connected.domain_id).update(tier="standard")
    connected.refresh_from_db()
    assert connected.smtp_password_encrypted == connected.imap_password_encrypted == ""
    return connected


@pytest.mark.django_db(transaction=True)  # the hand-over asks for the token from its own thread
def test_it_hands_campaign_mail_over_with_xoauth2_refreshes_once_and_keeps_it_when_revoked(
    oauth, campaigns, mail_servers, mail_account
):
    _dovecot, smtp = mail_servers
    # The SMTP server refuses MAIL before AUTH: without a password it knows, a message that
    # arrives came through an XOAUTH2 session.
    smtp.users.pop(mail_account.address)
    before = oauth.refresh_requests

    first = reserve(campaigns, prospect())
    assert first.transport == "mailbox_smtp"
    assert messages_hand_over(message_ids=[first.pk]).sent == 1
    assert arrived(smtp, first).message["X-Tenant"] is None
    assert oauth.refresh_requests == before  # the stored token was still good

    # The provider ends the token early: one refresh, the login retried, the message sent.
    oauth.expire_access_tokens()
    second = reserve(campaigns, prospect())
    assert messages_hand_over(message_ids=[second.pk]).sent == 1
    arrived(smtp, second)
    assert oauth.refresh_requests == before + 1
    assert MailboxGrant.objects.get(mailbox=campaigns).refresh_count == 1
    second.refresh_from_db()
    assert (second.state, second.attempts) == (MessageState.HANDED_OVER, 1)

    # Revoked: the message is not lost but waits; the mailbox is paused with the way back.
    oauth.revoke_refresh_tokens()
    oauth.expire_access_tokens()
    third = reserve(campaigns, prospect())
    now = timezone.now()
    summary = messages_hand_over(message_ids=[third.pk], now=now)
    assert (summary.sent, summary.retried, summary.failed) == (0, 1, 0)
    third.refresh_from_db()
    assert third.state == MessageState.RESERVED and third.next_attempt_at > now
    assert third.last_error == REVOKED
    assert not third.maybe_sent
    campaigns.refresh_from_db()
    assert (campaigns.status, campaigns.status_reason) == (MailboxStatus.PAUSED, REVOKED)
    assert MailboxGrant.objects.get(mailbox=campaigns).status == GrantStatus.REVOKED
    assert not any(third.recipient in r.rcpt_tos for r in smtp.messages)
    refreshes = oauth.refresh_requests

    # Its retry waits for the reconnect without asking the provider again.
    retry = messages_hand_over(message_ids=[third.pk], now=third.next_attempt_at)
    assert retry.retried == 1
    third.refresh_from_db()
    assert third.state == MessageState.RESERVED
    assert third.last_error == "Waiting: the mailbox is paused."
    assert oauth.refresh_requests == refreshes
    # The hand-over thread read the grant with its own connection and closed it afterwards:
    # only this test's connection is open (none left waiting for the garbage collector).
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        assert cursor.fetchone()[0] == 1


def reply_to(message: Message, to: str) -> bytes:
    reply = EmailMessage()
    reply["From"] = f"Lee <{message.recipient}>"
    reply["To"] = to
    reply["Subject"] = f"Re: {message.subject}"
    reply["Message-ID"] = f"<{secrets.token_hex(8)}@prospect.test>"
    reply["In-Reply-To"] = f"<{message.message_id}>"
    reply["References"] = f"<{message.message_id}>"
    reply.set_content("Hi,\n\nyes, let's talk on Tuesday.\n\nLee\n")
    return reply.as_bytes()


@pytest.mark.django_db
def test_it_polls_replies_with_xoauth2_and_says_to_reconnect_when_revoked(
    oauth, campaigns, mail_servers, mail_account
):
    dovecot, _smtp = mail_servers
    sent = reserve(campaigns, prospect())
    dovecot.append(mail_account.address, reply_to(sent, campaigns.address))
    before = oauth.refresh_requests

    result = mailbox_replies_poll(mailbox_id=campaigns.pk)

    assert (result.claimed, result.read, result.stored, result.error) == (True, 1, 1, "")
    reply = Reply.objects.get(mailbox=campaigns)
    assert (reply.in_reply_to, reply.from_address) == (sent, sent.recipient)
    assert oauth.refresh_requests == before

    # An expired token is refreshed once and the poll goes on.
    oauth.expire_access_tokens()
    second = reserve(campaigns, prospect())
    dovecot.append(mail_account.address, reply_to(second, campaigns.address))
    result = mailbox_replies_poll(
        mailbox_id=campaigns.pk, now=timezone.now() + timedelta(minutes=3)
    )
    assert (result.stored, result.error) == (1, "")
    assert oauth.refresh_requests == before + 1

    oauth.revoke_refresh_tokens()
    oauth.expire_access_tokens()
    later = timezone.now() + timedelta(minutes=6)
    result = mailbox_replies_poll(mailbox_id=campaigns.pk, now=later)

    assert result.claimed and result.stored == 0
    assert result.error.startswith(f"Reading replies failed: {REVOKED}")
    assert "reconnect the mailbox with its provider on its page" in result.error
    assert "password" not in result.error
    poll = MailboxPoll.objects.get(mailbox=campaigns)
    assert (poll.last_error, poll.failures) == (result.error, 1)
    campaigns.refresh_from_db()
    assert campaigns.status == MailboxStatus.PAUSED
    assert Reply.objects.filter(mailbox=campaigns).count() == 2


def partner_mailbox(domain: SendingDomain, servers) -> Mailbox:
    """A mailbox on the same test servers logging in with a password."""
    dovecot, smtp = servers
    address = f"partner-{secrets.token_hex(4)}@{domain.name}"
    password = secrets.token_urlsafe(12)
    dovecot.add_user(address, password)
    smtp.add_user(address, password)
    encrypted = secret_encrypt(password)
    return Mailbox.objects.create(
        domain=domain,
        local_part=address.split("@")[0],
        display_name="Pat",
        connection="external",
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        smtp_security="starttls",
        smtp_username=address,
        smtp_password_encrypted=encrypted,
        imap_host=dovecot.host,
        imap_port=dovecot.port,
        imap_security="starttls",
        imap_username=address,
        imap_password_encrypted=encrypted,
        connection_ok=True,
    )


def warmup(sender: Mailbox, recipient: Mailbox, now, *, will_reply: bool = False) -> WarmupSend:
    """A warm-up message as the planner reserves it, due for the agent once handed over."""
    code = warmup_code(random.Random(secrets.token_hex(4)))
    message = reserve(
        sender,
        recipient.address,
        MessageKind.WARMUP,
        subject="Notes from the offsite",
        text_body=f"Hi,\n\nthe notes are attached.\n\n{code}\n",
        campaign_ref=f"warmup-{now.date().isoformat()}",
        headers=warmup_headers(code),
    )
    return WarmupSend.objects.create(
        day=now.date(),
        sender=sender,
        recipient=recipient,
        cluster="other",
        send_at=now,
        code=code,
        message=message,
        sent_message_id=message.message_id,
        subject=message.subject,
        will_reply=will_reply,
        engage_at=now,
    )


@pytest.mark.django_db(transaction=True)  # the hand-over asks for the token from its own thread
def test_it_warms_up_an_oauth_mailbox_sending_and_receiving_over_xoauth2(
    oauth, connected, mail_servers, mail_account, settings
):
    settings.WARMUP_DWELL_SECONDS = [0, 0]
    settings.WARMUP_ENGAGE_DELAY_MINUTES = [5, 5]
    _dovecot, smtp = mail_servers
    smtp.users.pop(mail_account.address)  # only XOAUTH2 opens the OAuth mailbox's SMTP
    partner = partner_mailbox(connected.domain, mail_servers)
    now = timezone.now()
    outgoing = warmup(connected, partner, now)  # the OAuth mailbox writes (its SMTP)
    incoming = warmup(partner, connected, now, will_reply=True)  # and is written to (its IMAP)
    before = oauth.refresh_requests

    assert messages_hand_over().sent == 2
    arrived(smtp, outgoing.message)
    arrived(smtp, incoming.message)

    run = warming_engage(now=now + timedelta(minutes=1))

    assert (run.promoted, run.found, run.read, run.replied) == (2, 2, 2, 1)
    assert run.login_failures == run.unread == 0
    for send in (outgoing, incoming):
        send.refresh_from_db()
        assert (send.step, send.placement) == (Step.DONE, Placement.INBOX)
    # The agent's answer goes out from the OAuth mailbox, through its SMTP, in the thread.
    answer = WarmupSend.objects.select_related("message").get(parent=incoming)
    assert answer.message.transport == "mailbox_smtp"
    assert answer.message.headers["In-Reply-To"] == f"<{incoming.sent_message_id}>"
    assert messages_hand_over(now=now + timedelta(minutes=2)).sent == 1
    arrived(smtp, answer.message)
    assert oauth.refresh_requests == before

    # Revoked: the agent cannot log in, says how to fix it, and the message waits.
    oauth.revoke_refresh_tokens()
    oauth.expire_access_tokens()
    later = timezone.now() + timedelta(minutes=10)
    waiting = warmup(partner, connected, later)
    assert messages_hand_over(now=later).sent == 1
    run = warming_engage(now=later + timedelta(minutes=1))

    assert run.login_failures == 1
    answer.refresh_from_db()
    assert answer.step == Step.DONE  # read on the partner's side, which logs in as before
    waiting.refresh_from_db()
    assert (waiting.step, waiting.attempts) == (Step.FIND, 0)
    agent = WarmupSettings.objects.get(mailbox=connected)
    assert agent.agent_error.startswith(REVOKED)
    assert "reconnect the mailbox with its provider on its page" in agent.agent_error
    assert "retry automatically" not in agent.agent_error
    assert agent.agent_retry_at > later
    connected.refresh_from_db()
    assert (connected.status, connected.status_reason) == (MailboxStatus.PAUSED, REVOKED)
