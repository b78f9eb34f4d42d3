"""The engagement agent against real servers: warm-up mail sent through the mailboxes' own SMTP
server lands in Dovecot (a delivery rule files some into Junk), and the agent finds, rescues,
reads, answers and files it over IMAP."""

from datetime import timedelta
from email import message_from_bytes

import pytest

from accounts.crypto import secret_encrypt
from reputation.models import Event, EventKind
from sending.models import Mailbox, Message, MessageState, SendingDomain, SendsThrough
from sending.services.outbound import messages_hand_over
from tests.warming.network import EVENING, MORNING, TOMORROW, plan_and_send
from warming.content import WARMUP_HEADER
from warming.models import Placement, Step, WarmupSend, WarmupSettings
from warming.selectors import inbox_placement
from warming.services import warming_day_save
from warming.services.agent import warming_engage

pytestmark = pytest.mark.django_db


def test_the_agent_finds_rescues_reads_answers_and_files_each_message(network, junk_every_other):
    sends = plan_and_send(network)
    # Every second message of each recipient answers (the planner's draw, made explicit).
    answered = {s.pk for s in sends[::2]}
    WarmupSend.objects.filter(pk__in=answered).update(will_reply=True)
    WarmupSend.objects.exclude(pk__in=answered).update(will_reply=False)

    run = warming_engage(now=EVENING)
    assert run.promoted == len(sends) and run.found == len(sends) and run.read == len(sends)
    assert run.login_failures == 0 and run.missing == 0
    spam = WarmupSend.objects.filter(day=TOMORROW, placement=Placement.SPAM)
    assert spam.count() == run.rescued == len(sends) // 2

    for send in WarmupSend.objects.filter(day=TOMORROW, parent=None).select_related(
        "recipient", "message"
    ):
        assert send.step == Step.DONE and send.read_at and send.filed_at
        folder, flags = network.folder_of(send.recipient, send.code)
        assert folder == "Archive"  # filed away, out of the inbox
        assert b"\\Seen" in flags
        assert (b"$NotJunk" in flags) == send.rescued
        kinds = set(
            Event.objects.filter(source_key__startswith=f"warmup:{send.pk}:").values_list(
                "kind", flat=True
            )
        )
        expected = {EventKind.OPENED}
        if send.rescued:
            expected |= {EventKind.LANDED_IN_SPAM, EventKind.RESCUED}
        if send.pk in answered:
            expected.add(EventKind.REPLIED)
        assert kinds == expected
        event = Event.objects.get(source_key=f"warmup:{send.pk}:{EventKind.OPENED}")
        assert event.domain_id == send.sender.domain_id
        assert event.message_id == send.message.message_id[:64]

    # The replies: reserved in the outbound path from the recipient, in the same thread.
    replies = WarmupSend.objects.exclude(parent=None).select_related("parent__message", "message")
    assert {r.parent_id for r in replies} == answered
    for reply in replies:
        message = reply.message
        parent = reply.parent
        assert message.sender == parent.message.recipient
        assert message.recipient == parent.message.sender
        assert message.headers["In-Reply-To"] == f"<{parent.message.message_id}>"
        assert message.headers["References"].endswith(f"<{parent.message.message_id}>")
        assert message.subject.startswith("Re: ")
        assert message.headers[WARMUP_HEADER] == reply.code != parent.code

    # The replies go out and are read on the first sender's side, in the thread.
    later = EVENING + timedelta(hours=1)
    assert messages_hand_over(now=later).claimed == len(answered)
    WarmupSend.objects.exclude(parent=None).update(will_reply=True)  # the thread goes on
    second = warming_engage(now=later + timedelta(minutes=10))
    assert second.read == len(answered)
    # An answer to an answer carries the whole thread, from the platform's own records.
    for third in WarmupSend.objects.filter(parent__parent__isnull=False).select_related(
        "message", "parent__parent"
    ):
        first, reply = third.parent.parent, third.parent
        thread = f"<{first.sent_message_id}> <{reply.sent_message_id}>"
        assert third.message.headers["References"] == thread
        assert third.message.headers["In-Reply-To"] == f"<{reply.sent_message_id}>"
    assert WarmupSend.objects.filter(parent__parent__isnull=False).count() == len(answered)
    for reply in WarmupSend.objects.filter(
        parent__isnull=False, parent__parent=None
    ).select_related("recipient"):
        assert reply.step == Step.DONE
        folder, _ = network.folder_of(reply.recipient, reply.code)
        assert folder == "Archive"

    # Nothing is done twice: a further pass finds nothing due.
    events = Event.objects.count()
    again = warming_engage(now=later + timedelta(hours=2))
    assert again.found == again.read == again.replied == 0
    assert Event.objects.count() == events

    # Inbox placement, per mailbox, domain and recipient provider.
    north, south, _ = network.mailboxes
    report = inbox_placement(workspace=north.domain.workspace, today=TOMORROW)
    sent_by_north = WarmupSend.objects.filter(sender=north).exclude(placement="")  # looked at
    in_spam = sent_by_north.filter(placement=Placement.SPAM).count()
    share = report.by_mailbox[north.pk]
    assert (share.inbox, share.spam) == (sent_by_north.count() - in_spam, in_spam)
    assert report.by_domain[north.domain_id].total == sent_by_north.count()
    assert report.by_provider["other providers"].total == sent_by_north.count()
    assert south.pk not in report.by_mailbox  # the other workspace's mailboxes stay out


def test_a_message_that_never_arrives_is_retried_then_recorded_missing(network):
    sends = plan_and_send(network)
    lost = sends[0]
    # The message vanishes from the recipient's mailbox before the agent looks.
    client = network.imap(lost.recipient)
    client.select_folder("INBOX")
    client.delete_messages(client.search(["HEADER", WARMUP_HEADER, lost.code]))
    client.expunge()
    client.logout()

    now = EVENING
    for attempt in range(1, 4):
        warming_engage(now=now)
        lost.refresh_from_db()
        assert lost.step == Step.FIND and lost.attempts == attempt
        assert lost.engage_at > now
        now = lost.engage_at
    run = warming_engage(now=now)
    lost.refresh_from_db()
    assert run.missing == 1 and lost.step == Step.MISSING and lost.placement == Placement.MISSING
    assert not Event.objects.filter(source_key__startswith=f"warmup:{lost.pk}:").exists()
    report = inbox_placement(workspace=lost.sender.domain.workspace, today=TOMORROW)
    assert report.by_mailbox[lost.sender_id].missing == 1


def test_a_wrong_imap_password_pauses_that_mailbox_with_a_reason(network):
    plan_and_send(network)
    north, south, _ = network.mailboxes
    Mailbox.objects.filter(pk=south.pk).update(imap_password_encrypted=secret_encrypt("wrong"))

    run = warming_engage(now=EVENING)
    assert run.login_failures == 1
    settings = WarmupSettings.objects.get(mailbox=south)
    assert "rejected the username or password" in settings.agent_error
    assert "mailbox page" in settings.agent_error
    assert settings.agent_retry_at > EVENING
    # Its messages wait (no attempt counted); the other mailbox's were handled.
    to_south = WarmupSend.objects.filter(recipient=south)
    assert set(to_south.values_list("step", flat=True)) == {Step.FIND}
    assert set(to_south.values_list("attempts", flat=True)) == {0}
    assert not WarmupSend.objects.filter(recipient=north).exclude(step=Step.DONE).exists()

    # The Warming page's answer to "why isn't it sending?"
    from warming.selectors import mailbox_plan, warmup_settings_for

    south.refresh_from_db()
    plan = mailbox_plan(south, warmup_settings_for(south), TOMORROW)
    assert plan.today.volume == 0
    assert "cannot log in to its inbox" in plan.today.reason
    assert "password" in plan.today.reason

    # Before the retry time nothing is tried; once the password is fixed it resumes.
    assert warming_engage(now=EVENING + timedelta(minutes=1)).login_failures == 0
    account = network.accounts[south.pk]
    Mailbox.objects.filter(pk=south.pk).update(
        imap_password_encrypted=secret_encrypt(account.password)
    )
    run = warming_engage(now=settings.agent_retry_at)
    assert run.login_failures == 0 and run.read == to_south.count()
    settings.refresh_from_db()
    assert settings.agent_error == "" and settings.agent_retry_at is None


def test_imap_down_then_back_resumes_without_duplicates(network, mail_servers):
    sends = plan_and_send(network)
    _, south, _ = network.mailboxes
    WarmupSend.objects.update(will_reply=True)
    dovecot, _ = mail_servers
    real_port = dovecot.port
    # The server goes away: nobody listens where the mailbox's IMAP points.
    from tests.conftest import free_port

    Mailbox.objects.filter(pk=south.pk).update(imap_port=free_port())
    run = warming_engage(now=EVENING)
    assert run.login_failures == 1
    assert "Connection refused" in WarmupSettings.objects.get(mailbox=south).agent_error

    Mailbox.objects.filter(pk=south.pk).update(imap_port=real_port)
    retry_at = WarmupSettings.objects.get(mailbox=south).agent_retry_at
    run = warming_engage(now=retry_at)
    to_south = WarmupSend.objects.filter(recipient=south, parent=None)
    assert run.read == to_south.count()
    assert set(to_south.values_list("step", flat=True)) == {Step.DONE}
    # Once each: one open and one reply per message, however often the agent came by.
    warming_engage(now=retry_at + timedelta(hours=3))
    for send in to_south:
        for kind in (EventKind.OPENED, EventKind.REPLIED):
            assert Event.objects.filter(source_key=f"warmup:{send.pk}:{kind}").count() == 1
        assert send.replies.count() == 1
    assert len(sends) == WarmupSend.objects.filter(parent=None).count()


def test_an_smtp_refusal_is_recorded_on_the_message_and_the_send(network):
    north, *_ = network.mailboxes
    Mailbox.objects.filter(pk=north.pk).update(smtp_password_encrypted=secret_encrypt("wrong"))
    assert warming_day_save(day=TOMORROW, now=MORNING) is not None
    for _ in range(8):  # retries back off; each pass hands over what is due
        messages_hand_over(now=EVENING + timedelta(days=1))
        Message.objects.filter(state=MessageState.RESERVED).update(next_attempt_at=MORNING)
    from_north = WarmupSend.objects.filter(sender=north).select_related("message")
    refused = [s.message for s in from_north]
    assert refused and all("rejected the username or password" in m.last_error for m in refused)
    failed = [m for m in refused if m.state == MessageState.FAILED]
    warming_engage(now=EVENING)
    for send in WarmupSend.objects.filter(message__in=failed):
        assert send.step == Step.FAILED
        assert "rejected the username or password" in send.last_error


def test_a_message_read_in_the_raw_carries_the_tag_header_and_the_code(network):
    sends = plan_and_send(network)
    send = sends[0]
    client = network.imap(send.recipient)
    client.select_folder("INBOX", readonly=True)
    (uid,) = client.search(["HEADER", WARMUP_HEADER, send.code])
    raw = client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]
    client.logout()
    parsed = message_from_bytes(raw)
    assert parsed[WARMUP_HEADER] == send.code
    assert send.code in parsed.get_payload(decode=True).decode()


def test_an_own_servers_domains_dkim_is_confirmed_from_the_first_message_read(
    network, mail_servers, zone, tmp_path
):
    """The sender's provider signs its mail (as Google or Microsoft do); the agent reads the
    message on the recipient's side and the domain's DKIM is confirmed from it."""
    import dkim
    from dkim import dknewkey

    _, smtp = mail_servers
    north = network.mailboxes[0]
    domain = north.domain
    SendingDomain.objects.filter(pk=domain.pk).update(sends_through=SendsThrough.OWN_SERVERS)
    key_file, record_file = tmp_path / "s1.key", tmp_path / "s1.dns"
    dknewkey.GenRSAKeys(str(key_file), verbose=False)
    dknewkey.ExtractRSADnsPublicKey(str(key_file), str(record_file), verbose=False)
    zone.set(f"s1._domainkey.{domain.name}", "TXT", [record_file.read_text()])
    results = f"mx.mailbox.test; dkim=pass header.d={domain.name} header.s=s1"

    def provider_signs(sender: str, raw: bytes) -> bytes:
        if not sender.endswith("@" + domain.name):
            return raw
        signature = dkim.sign(raw, b"s1", domain.name.encode(), key_file.read_bytes())
        return f"Authentication-Results: {results}\r\n".encode() + signature + raw

    smtp.transform = provider_signs
    try:
        plan_and_send(network)
    finally:
        smtp.transform = None
    domain.refresh_from_db()
    assert domain.dkim_pending
    warming_engage(now=EVENING)
    domain.refresh_from_db()
    assert domain.dkim_confirmed_at is not None and not domain.dkim_pending
    assert domain.dkim_confirmed_selector == "s1"
    assert results in domain.dkim_confirmed_auth_results
    # The other senders send through the platform: nothing is checked for them.
    for other in network.mailboxes[1:]:
        other.domain.refresh_from_db()
        assert other.domain.dkim_confirmed_at is None
