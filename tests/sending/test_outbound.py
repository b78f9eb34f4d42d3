"""The outbound path against real servers: the HTTP injection stand-in (which hands each message
to a loopback SMTP receiver), SMTP relays and a customer's own server with AUTH."""

import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from config.embedded_mta import DeliveryRefused, InjectStandIn
from config.errors import ApplicationError
from reputation.core.pool_map import key, kumo_redis
from reputation.models import Event
from sending.models import (
    Mailbox,
    Message,
    MessageState,
    SendingDomain,
    SuppressedDomain,
    Suppression,
)
from sending.services.mailboxes import mailbox_create
from sending.services.outbound import (
    MessageDraft,
    messages_hand_over,
    messages_reconcile,
    messages_reserve,
)
from tests.conftest import external_data, free_port
from tests.factories import WorkspaceFactory

ROOT = Path(__file__).resolve().parents[2]


class Receiver:
    """What the stand-in MTA delivered, through SMTP, to the loopback receiver."""

    def __init__(self, smtp_server) -> None:
        self.server = smtp_server

    def deliver(self, sender: str, recipient: str, data: bytes) -> None:
        try:
            with smtplib.SMTP(self.server.host, self.server.port, timeout=5) as client:
                client.sendmail(sender, [recipient], data)
        except smtplib.SMTPRecipientsRefused as error:
            code, text = next(iter(error.recipients.values()))
            raise DeliveryRefused(code, text.decode()) from error

    def count(self, message_id: str) -> int:
        return sum(1 for m in self.server.messages if m["Message-ID"] == f"<{message_id}>")


@pytest.fixture
def receiver(smtp_server) -> Receiver:
    return Receiver(smtp_server)


@pytest.fixture
def mta(settings, receiver) -> Iterator[InjectStandIn]:
    """The HTTP injection stand-in with Basic auth; its log records are kept for the hook."""
    records: list[dict] = []
    stand_in = InjectStandIn(
        deliver=receiver.deliver,
        report=records.extend,
        username="app",
        password="s3cret",
        notes=kumo_redis(),  # the notes in the Redis the platform clears them from
        notes_prefix=key("accepted:"),
    )
    stand_in.records = records  # type: ignore[attr-defined]
    stand_in.start()
    settings.OUTBOUND_TRANSPORT = "kumo_http"
    settings.KUMO_INJECT_URL = stand_in.url
    settings.KUMO_INJECT_USERNAME = "app"
    settings.KUMO_INJECT_PASSWORD = "s3cret"
    settings.KUMO_INJECT_TIMEOUT_SECONDS = 5
    yield stand_in
    stand_in.stop()


def draft(mailbox: Mailbox, recipient: str = "lee@prospect.test", **kw) -> MessageDraft:
    return MessageDraft(
        mailbox=mailbox,
        kind=kw.pop("kind", "campaign"),
        recipient=recipient,
        subject=kw.pop("subject", "Quick question"),
        text_body=kw.pop("text_body", "Hi Lee,\n\nworth a chat?\n"),
        campaign_ref=kw.pop("campaign_ref", "cmp_1"),
        **kw,
    )


def reserve(mailbox: Mailbox, *recipients: str, **kw) -> list[Message]:
    return messages_reserve(
        drafts=[draft(mailbox, r, **kw) for r in recipients or ["lee@prospect.test"]],
        enqueue=False,
    )


@pytest.fixture
def alex(sender) -> Mailbox:
    # Campaign messages (the default kind here) go out only from a domain in an external tier.
    SendingDomain.objects.filter(pk=sender.pk).update(tier="standard")
    return Mailbox.objects.get(domain=sender, local_part="alex")


def test_it_reserves_a_row_with_its_own_message_id_on_the_sending_domain(alex):
    first, second = reserve(alex, "a@prospect.test", "b@prospect.test")
    assert first.state == MessageState.RESERVED and first.transport == "kumo_http"
    assert first.message_id.endswith("@acme-outreach.com")
    assert first.message_id != second.message_id
    assert Message.objects.filter(pk=first.pk, workspace=alex.domain.workspace).exists()


def test_a_suppressed_or_malformed_recipient_is_refused_and_nothing_is_reserved(alex):
    Suppression.objects.create(
        workspace=alex.domain.workspace, address="gone@prospect.test", reason="hard_bounce"
    )
    with pytest.raises(Exception, match="suppression list"):
        reserve(alex, "ok@prospect.test", "gone@prospect.test")
    with pytest.raises(Exception, match="not a single email address"):
        reserve(alex, "two@a.test, three@b.test")
    with pytest.raises(Exception, match="cannot be set"):
        reserve(alex, headers={"Message-ID": "<mine@x>"})
    assert not Message.objects.exists()


def test_a_reply_from_the_inbox_only_goes_to_someone_who_wrote_to_the_workspace(alex, stranger):
    from inbox.models import Reply

    with pytest.raises(ApplicationError, match="never wrote to this workspace"):
        reserve(alex, "cold@prospect.test", kind="reply")
    # Someone who wrote to another workspace does not count either.
    Reply.objects.create(workspace=stranger.workspace, from_address="cold@prospect.test")
    with pytest.raises(ApplicationError, match="never wrote to this workspace"):
        reserve(alex, "cold@prospect.test", kind="reply")
    assert not Message.objects.exists()
    Reply.objects.create(workspace=alex.domain.workspace, from_address="cold@prospect.test")
    (message,) = reserve(alex, "Cold@Prospect.test", kind="reply")
    assert message.kind == "reply"


def test_a_message_reaches_the_receiver_once_through_injection_and_its_records_attach(
    alex, mta, receiver, post
):
    (message,) = reserve(alex)
    summary = messages_hand_over()
    assert (summary.claimed, summary.sent) == (1, 1)
    message.refresh_from_db()
    assert message.state == MessageState.HANDED_OVER and message.attempts == 1
    received = receiver.server.wait_for("lee@prospect.test")
    assert received["Message-ID"] == f"<{message.message_id}>"
    assert received["X-Tenant"] is None  # the routing headers never leave the MTA
    assert "worth a chat?" in receiver.server.body(received)

    assert messages_hand_over().claimed == 0  # nothing is sent twice
    assert receiver.count(message.message_id) == 1

    mta.flush()
    assert [r["type"] for r in mta.records] == ["Reception", "Delivery"]
    post(mta.records)
    events = Event.objects.filter(outbound=message)
    assert sorted(events.values_list("kind", flat=True)) == ["delivered", "sent"]
    message.refresh_from_db()
    assert message.state == MessageState.DELIVERED


def test_a_batch_goes_in_one_request_per_sender(alex, mta, receiver):
    messages = reserve(alex, *[f"p{i}@prospect.test" for i in range(5)])
    assert messages_hand_over().sent == 5
    assert mta.requests == 1
    for message in messages:
        assert receiver.count(message.message_id) == 1


@pytest.mark.parametrize(
    ("status", "state", "reason"),
    [
        (401, MessageState.RESERVED, "refused our credentials"),
        (422, MessageState.FAILED, "content refused"),
        (500, MessageState.RESERVED, "answered 500"),
        (503, MessageState.RESERVED, "answered 503"),
    ],
)
def test_injection_errors_are_retried_or_failed_with_a_stored_reason(
    alex, mta, status, state, reason
):
    (message,) = reserve(alex)
    mta.answer_status = status
    messages_hand_over()
    message.refresh_from_db()
    assert message.state == state
    assert reason in message.last_error
    if state == MessageState.RESERVED:
        assert message.next_attempt_at > timezone.now()


def test_wrong_credentials_are_refused_by_the_node(alex, mta, settings):
    settings.KUMO_INJECT_PASSWORD = "wrong"
    (message,) = reserve(alex)
    messages_hand_over()
    message.refresh_from_db()
    assert message.state == MessageState.RESERVED and "credentials" in message.last_error


def test_partly_failed_recipients_each_get_their_own_outcome(alex, mta, receiver):
    ok, gone, later = reserve(alex, "ok@prospect.test", "gone@prospect.test", "later@x.test")
    mta.refuse = {
        "gone@prospect.test": "550 5.1.1 no such user",
        "later@x.test": "451 4.3.0 try again later",
    }
    summary = messages_hand_over()
    assert (summary.sent, summary.failed, summary.retried) == (1, 1, 1)
    for message in (ok, gone, later):
        message.refresh_from_db()
    assert ok.state == MessageState.HANDED_OVER
    assert gone.state == MessageState.FAILED and "550 5.1.1 no such user" in gone.last_error
    assert later.state == MessageState.RESERVED and "451 4.3.0" in later.last_error


def test_no_answer_in_time_is_retried_and_the_node_drops_the_copy(alex, mta, receiver, settings):
    settings.KUMO_INJECT_TIMEOUT_SECONDS = 0.5
    (message,) = reserve(alex)
    mta.stall = threading.Event()
    messages_hand_over()
    message.refresh_from_db()
    assert message.state == MessageState.RESERVED and message.maybe_sent
    assert "did not answer (ReadTimeout" in message.last_error
    mta.stall.set()
    mta.stall = None
    messages_hand_over(now=message.next_attempt_at)
    message.refresh_from_db()
    assert message.state == MessageState.HANDED_OVER and message.attempts == 2
    assert receiver.count(message.message_id) == 1


def test_an_unreachable_node_is_a_retry_and_attempts_run_out(alex, settings):
    settings.KUMO_INJECT_URL = f"http://127.0.0.1:{free_port()}"
    settings.OUTBOUND_MAX_ATTEMPTS = 2
    (message,) = reserve(alex)
    messages_hand_over()
    message.refresh_from_db()
    assert message.state == MessageState.RESERVED and "could not be reached" in message.last_error
    messages_hand_over(now=message.next_attempt_at)
    message.refresh_from_db()
    assert message.state == MessageState.FAILED
    assert message.last_error.startswith("Gave up after 2 attempts")


# --- SMTP relays -------------------------------------------------------------------------------


def test_smtp_relay_to_our_mta_carries_the_routing_headers(alex, smtp_server, settings):
    settings.OUTBOUND_TRANSPORT = "smtp_relay"
    settings.SMTP_RELAY_HOST, settings.SMTP_RELAY_PORT = smtp_server.host, smtp_server.port
    (message,) = reserve(alex)
    assert message.transport == "smtp_relay"
    assert messages_hand_over().sent == 1
    received = smtp_server.wait_for("lee@prospect.test")
    assert received["X-Tenant"] == alex.domain.public_id and received["X-Kind"] == "campaign"


def test_a_third_party_relay_never_sees_the_routing_headers(alex, smtp_server, settings):
    settings.OUTBOUND_TRANSPORT = "smtp_relay"
    settings.SMTP_RELAY_HOST, settings.SMTP_RELAY_PORT = smtp_server.host, smtp_server.port
    settings.SMTP_RELAY_IS_KUMOMTA = False
    (message,) = reserve(alex, "third@prospect.test")
    messages_hand_over()
    received = smtp_server.wait_for("third@prospect.test")
    assert received["X-Tenant"] is None and received["Message-ID"] == f"<{message.message_id}>"


class Refusing:
    """An SMTP server that refuses some recipients and defers some messages, as relays do."""

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address.startswith("nobody@"):
            return "550 5.1.1 User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if envelope.rcpt_tos[0].startswith("busy@"):
            return "451 4.7.1 Greylisted, try later"
        return "250 OK ids=0123456789abcdef0123456789abcdef"


@pytest.fixture
def refusing_relay(settings) -> Iterator[Controller]:
    controller = Controller(Refusing(), hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.OUTBOUND_TRANSPORT = "smtp_relay"
    settings.SMTP_RELAY_HOST, settings.SMTP_RELAY_PORT = "127.0.0.1", controller.port
    yield controller
    controller.stop()


def test_relay_refusals_are_stored_per_message_in_one_session(alex, refusing_relay):
    ok, nobody, busy = reserve(alex, "ok@x.test", "nobody@x.test", "busy@x.test")
    summary = messages_hand_over()
    assert (summary.sent, summary.failed, summary.retried) == (1, 1, 1)
    for message in (ok, nobody, busy):
        message.refresh_from_db()
    assert ok.state == MessageState.HANDED_OVER
    assert ok.mta_id == "0123456789abcdef0123456789abcdef"  # KumoMTA's "250 OK ids=..."
    assert nobody.state == MessageState.FAILED
    assert "refused the recipient: 550 5.1.1 User unknown" in nobody.last_error
    assert busy.state == MessageState.RESERVED and "451 4.7.1 Greylisted" in busy.last_error


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never says a word (a firewall black hole)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


def test_a_relay_that_never_answers_times_out_into_a_retry(alex, silent_server, settings):
    settings.OUTBOUND_TRANSPORT = "smtp_relay"
    settings.SMTP_RELAY_HOST, settings.SMTP_RELAY_PORT = "127.0.0.1", silent_server
    settings.OUTBOUND_SMTP_TIMEOUT_SECONDS = 0.5
    (message,) = reserve(alex)
    messages_hand_over()
    message.refresh_from_db()
    assert message.state == MessageState.RESERVED and "No answer" in message.last_error


# --- the customer's own server -----------------------------------------------------------------


@pytest.fixture
def external_mailbox(mail_servers, mail_account, sender, owner) -> Mailbox:
    data = external_data(mail_servers, mail_account)
    data["local_part"] = "sam"
    SendingDomain.objects.filter(pk=sender.pk).update(tier="standard")  # campaigns need it
    return mailbox_create(domain=sender, actor=owner.user, data=data)


def test_an_external_mailbox_sends_through_its_own_server_with_its_login(
    external_mailbox, mail_servers, mail_account
):
    _dovecot, smtp = mail_servers
    (message,) = reserve(external_mailbox, mail_account.address)
    assert message.transport == "mailbox_smtp"
    assert messages_hand_over().sent == 1
    received = smtp.wait_for(mail_account.address)
    assert received.mail_from == external_mailbox.address
    assert received.message["X-Tenant"] is None  # never leaked to another company's server
    assert received.message["Message-ID"] == f"<{message.message_id}>"


def test_a_refused_login_is_a_retry_with_a_reason_the_customer_can_act_on(
    external_mailbox, mail_servers, mail_account, smtp_auth_server
):
    smtp_auth_server.users[mail_account.address] = "changed-elsewhere"
    (message,) = reserve(external_mailbox, "lee@prospect.test")
    messages_hand_over()
    message.refresh_from_db()
    assert message.state == MessageState.RESERVED
    assert "rejected the username or password" in message.last_error


# --- never twice: crashes and races --------------------------------------------------------------

WORKER = """
import django, os, sys
django.setup()
from sending.services.outbound import messages_hand_over
ids = [int(i) for i in sys.argv[1:]]
while messages_hand_over(message_ids=ids).claimed:
    pass
"""


def _worker(settings, message_ids: list[int]) -> subprocess.Popen:
    db = settings.DATABASES["default"]
    env = dict(
        os.environ,
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        DJANGO_SETTINGS_MODULE="config.settings",
        KUMO_INJECT_URL=settings.KUMO_INJECT_URL,
        KUMO_INJECT_USERNAME=settings.KUMO_INJECT_USERNAME,
        KUMO_INJECT_PASSWORD=settings.KUMO_INJECT_PASSWORD,
        OUTBOUND_TRANSPORT="kumo_http",
        OUTBOUND_BATCH_SIZE="4",  # small claims, so that racing workers interleave
        CELERY_TASK_ALWAYS_EAGER="true",
        EMBEDDED_SCHEDULER="false",
    )
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, *map(str, message_ids)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("records_arrive", [True, False])
def test_a_worker_killed_after_the_hand_over_never_causes_a_second_send(
    alex, mta, receiver, settings, post, records_arrive
):
    (message,) = reserve(alex)
    mta.stall = threading.Event()  # the node takes the message, then the answer is held
    worker = _worker(settings, [message.pk])
    with receiver.server.arrived:  # the node took it and handed it to the receiver
        assert receiver.server.arrived.wait_for(
            lambda: receiver.count(message.message_id) == 1, timeout=20
        )
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    mta.stall.set()
    mta.stall = None
    message.refresh_from_db()
    assert message.state == MessageState.SENDING  # handed over, never booked

    assert messages_hand_over().claimed == 0  # a claimed message is not taken again
    assert messages_reconcile() == dict.fromkeys(("released", "proven", "resent", "failed"), 0)
    if records_arrive:
        mta.flush()
        post(mta.records)  # the node's records prove it went
        message.refresh_from_db()
        assert message.state == MessageState.DELIVERED
    assert message.attempt_started_at is not None and message.attempts == 1
    lease = timedelta(seconds=settings.OUTBOUND_HANDOVER_LEASE_SECONDS + 1)
    later = message.attempt_started_at + lease
    counts = messages_reconcile(now=later)
    assert counts == (
        {"released": 0, "proven": 0, "resent": 0, "failed": 0}  # delivered already
        if records_arrive
        else {"released": 0, "proven": 0, "resent": 1, "failed": 0}
    )
    messages_hand_over(now=later)
    message.refresh_from_db()
    assert message.state in (MessageState.HANDED_OVER, MessageState.DELIVERED)
    assert receiver.count(message.message_id) == 1


@pytest.mark.django_db(transaction=True)
def test_an_interrupted_hand_over_to_a_server_that_keeps_no_ids_is_failed_not_resent(
    alex, smtp_server, settings
):
    settings.OUTBOUND_TRANSPORT = "smtp_relay"
    settings.SMTP_RELAY_IS_KUMOMTA = False
    (message,) = reserve(alex)
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Message.objects.filter(pk=message.pk).update(
        state=MessageState.SENDING, claimed_at=an_hour_ago, attempt_started_at=an_hour_ago
    )
    assert messages_reconcile() == {"released": 0, "proven": 0, "resent": 0, "failed": 1}
    message.refresh_from_db()
    assert message.state == MessageState.FAILED and "not sent again" in message.last_error


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_on_the_same_messages_hand_each_over_once(alex, mta, receiver, settings):
    messages = reserve(alex, *[f"race{i}@prospect.test" for i in range(40)])
    ids = [m.pk for m in messages]
    workers = [_worker(settings, ids) for _ in range(2)]
    for worker in workers:
        assert worker.wait(timeout=60) == 0, worker.stderr.read().decode()
    assert set(Message.objects.filter(pk__in=ids).values_list("state", flat=True)) == {
        MessageState.HANDED_OVER
    }
    assert sum(Message.objects.filter(pk__in=ids).values_list("attempts", flat=True)) == 40
    for message in messages:
        assert receiver.count(message.message_id) == 1


def test_the_stand_in_refuses_what_the_documented_api_refuses(mta):
    import httpx

    auth = ("app", "s3cret")
    url = mta.url + "/api/inject/v1"
    assert httpx.post(url, json={"envelope_sender": "a@b"}, auth=auth).status_code == 422
    bad_field = {"envelope_sender": "a@b", "recipients": [{"email": "c@d"}], "content": "x", "x": 1}
    assert httpx.post(url, json=bad_field, auth=auth).status_code == 422
    assert httpx.post(url, content=b"{", auth=auth).status_code == 400
    no_tenant = {
        "envelope_sender": "a@b",
        "recipients": [{"email": "c@d"}],
        "content": "Message-ID: <x@b>\r\n\r\nhi",
    }
    reply = httpx.post(url, json=no_tenant, auth=auth).json()
    assert reply["fail_count"] == 1 and "no X-Tenant" in reply["errors"][0]


def test_a_reception_record_proves_an_interrupted_hand_over(alex, post):
    from tests.reputation.records import sent

    proven, unproven = reserve(alex, "a@prospect.test", "b@prospect.test")
    stuck = timezone.now() - timedelta(hours=1)
    Message.objects.filter(pk__in=[proven.pk, unproven.pk]).update(
        state=MessageState.SENDING, claimed_at=stuck, attempt_started_at=stuck, attempts=1
    )
    post(
        [
            sent(
                alex.domain,
                "a@prospect.test",
                message_id="a" * 32,
                rfc_message_id=proven.message_id,
            )
        ]
    )
    assert messages_reconcile() == {"released": 0, "proven": 1, "resent": 1, "failed": 0}
    proven.refresh_from_db()
    unproven.refresh_from_db()
    assert proven.state == MessageState.HANDED_OVER and proven.mta_id == "a" * 32
    assert "records show it was accepted" in proven.last_error
    assert unproven.state == MessageState.RESERVED and "sent again" in unproven.last_error


def test_staff_see_each_message_with_its_timeline(
    alex, mta, post, staff_client, django_assert_max_num_queries
):
    messages = reserve(alex, "a@prospect.test", "b@prospect.test")
    mta.refuse = {"b@prospect.test": "550 5.1.1 no such user"}
    messages_hand_over()
    mta.flush()
    post(mta.records)
    client = staff_client
    with django_assert_max_num_queries(12):
        listing = client.get("/admin/sending/message/").content.decode()
    assert "a@prospect.test" in listing and "550 5.1.1 no such user" in listing
    page = client.get(f"/admin/sending/message/{messages[0].pk}/change/").content.decode()
    for step in ("Reserved", "Claimed (attempt 1)", "Handed over (KumoMTA HTTP injection)"):
        assert step in page
    assert "Delivered" in page and "250 OK" in page
    failed = client.get(f"/admin/sending/message/{messages[1].pk}/change/").content.decode()
    assert "Failed" in failed and "no such user" in failed
    domain_page = client.get(f"/admin/sending/sendingdomain/{alex.domain.pk}/change/")
    assert f"?domain__id__exact={alex.domain.pk}" in domain_page.content.decode()


def test_a_mailbox_whose_login_cannot_be_read_waits_with_a_reason(sender, owner):
    from tests.conftest import UNTESTED_SERVERS

    data = {"connection": "external", "local_part": "kim", **UNTESTED_SERVERS}
    mailbox = mailbox_create(domain=sender, actor=owner.user, data=data)
    (message,) = reserve(mailbox, kind="warmup")
    Mailbox.objects.filter(pk=mailbox.pk).update(smtp_password_encrypted="not-a-fernet-token")
    summary = messages_hand_over()
    assert (summary.claimed, summary.retried) == (1, 1)
    message.refresh_from_db()
    assert message.state == MessageState.RESERVED
    assert "could not be decrypted" in message.last_error


# --- what a review of the path asked for ------------------------------------------------------


def test_a_message_the_node_noted_then_refused_is_cleared_and_delivered_on_retry(
    alex, mta, receiver
):
    (message,) = reserve(alex)
    mta.fail_after_noting = {"lee@prospect.test"}
    messages_hand_over()
    message.refresh_from_db()
    assert message.state == MessageState.RESERVED and not message.maybe_sent
    assert "QueueManager::insert failed" in message.last_error
    assert kumo_redis().exists(key(f"accepted:{message.message_id}"))  # noted, never spooled
    mta.fail_after_noting = set()
    messages_hand_over(now=message.next_attempt_at)
    message.refresh_from_db()
    assert message.state == MessageState.HANDED_OVER
    assert receiver.count(message.message_id) == 1  # not dropped as a copy of itself


def test_a_maybe_delivered_message_keeps_its_note_and_says_it_is_a_resend(alex, mta, receiver):
    (message,) = reserve(alex)
    Message.objects.filter(pk=message.pk).update(maybe_sent=True, attempts=1)
    kumo_redis().set(key(f"accepted:{message.message_id}"), 1)  # the first copy was accepted
    assert messages_hand_over().sent == 1  # the node drops it and answers "accepted"
    assert receiver.count(message.message_id) == 0

    (other,) = reserve(alex, "other@prospect.test")
    Message.objects.filter(pk=other.pk).update(maybe_sent=True, attempts=1)
    mta.notes_down = True  # the node cannot tell whether it has it: it must not guess
    messages_hand_over()
    other.refresh_from_db()
    assert other.state == MessageState.RESERVED and "cannot confirm" in other.last_error
    (fresh,) = reserve(alex, "fresh@prospect.test")
    assert messages_hand_over().sent == 1  # a first attempt is accepted all the same
    assert receiver.count(fresh.message_id) == 1


@pytest.mark.parametrize(("status", "maybe"), [(500, True), (502, True), (503, False)])
def test_answers_after_which_the_node_may_have_the_batch_mark_it(alex, mta, status, maybe):
    (message,) = reserve(alex)
    mta.answer_status = status
    messages_hand_over()
    message.refresh_from_db()
    assert message.state == MessageState.RESERVED and message.maybe_sent is maybe


def test_one_address_twice_goes_in_two_requests_and_each_keeps_its_outcome(alex, mta, receiver):
    first, second = reserve(alex, "twice@prospect.test", "twice@prospect.test")
    assert messages_hand_over().sent == 2
    assert mta.requests == 2
    assert receiver.count(first.message_id) == receiver.count(second.message_id) == 1


def test_requests_stay_under_the_nodes_body_limit(alex, mta, receiver, settings):
    settings.KUMO_INJECT_MAX_REQUEST_BYTES = 8000
    big = "x" * 3000 + "\n"
    messages = reserve(alex, *[f"p{i}@prospect.test" for i in range(6)], text_body=big)
    (huge,) = reserve(alex, "huge@prospect.test", text_body="y" * 20000)
    summary = messages_hand_over()
    assert (summary.sent, summary.failed) == (6, 1)
    assert mta.requests >= 3  # split by size, not one request of six
    huge.refresh_from_db()
    assert huge.state == MessageState.FAILED and "request_body_limit" in huge.last_error
    assert all(receiver.count(m.message_id) == 1 for m in messages)


def test_a_node_that_answers_413_gets_the_batch_in_halves(alex, mta, receiver, settings):
    messages = reserve(alex, *[f"h{i}@prospect.test" for i in range(4)], text_body="z" * 2000)
    mta.max_body = 7000  # smaller than the platform's own limit
    assert messages_hand_over().sent == 4
    assert all(receiver.count(m.message_id) == 1 for m in messages)


def test_an_international_domain_goes_out_as_punycode(alex, smtp_server, settings):
    settings.OUTBOUND_TRANSPORT = "smtp_relay"
    settings.SMTP_RELAY_HOST, settings.SMTP_RELAY_PORT = smtp_server.host, smtp_server.port
    (message,) = reserve(alex, "Joerg@Bücher.example")
    assert message.recipient == "joerg@xn--bcher-kva.example"
    assert messages_hand_over().sent == 1
    assert smtp_server.wait_for("joerg@xn--bcher-kva.example")


def test_what_changed_since_reserving_is_checked_at_claim_time(alex, mta, receiver, owner):
    gone, _later = reserve(alex, "gone@prospect.test", "later@prospect.test")
    Suppression.objects.create(
        workspace=alex.domain.workspace, address="gone@prospect.test", reason="complaint"
    )
    summary = messages_hand_over()
    assert (summary.sent, summary.failed) == (1, 1)
    gone.refresh_from_db()
    assert gone.state == MessageState.FAILED and "suppression list" in gone.last_error
    assert receiver.count(gone.message_id) == 0

    (waiting,) = reserve(alex, "waits@prospect.test")
    Mailbox.objects.filter(pk=alex.pk).update(status="paused")
    messages_hand_over()
    waiting.refresh_from_db()
    assert waiting.state == MessageState.RESERVED and "mailbox is paused" in waiting.last_error
    assert waiting.attempts == 0 and waiting.next_attempt_at > timezone.now()


def test_a_blocked_domain_is_refused_at_reserve_and_at_claim_time(alex, mta, receiver):
    workspace = alex.domain.workspace
    SuppressedDomain.objects.create(workspace=workspace, domain="rival.test", reason="competitor")
    with pytest.raises(Exception, match="suppression list"):
        reserve(alex, "anyone@rival.test")
    assert not Message.objects.exists()
    # Blocked after it was scheduled: not sent, for good, with the domain named.
    queued, _fine = reserve(alex, "later@blocked-later.test", "fine@prospect.test")
    SuppressedDomain.objects.create(workspace=None, domain="blocked-later.test")
    assert (messages_hand_over().sent, Message.objects.filter(state="failed").count()) == (1, 1)
    queued.refresh_from_db()
    assert "blocked-later.test" in queued.last_error and receiver.count(queued.message_id) == 0
    # Another workspace's block does not apply here.
    SuppressedDomain.objects.create(workspace=WorkspaceFactory(), domain="elsewhere.test")
    (other,) = reserve(alex, "a@elsewhere.test")
    assert other.state == MessageState.RESERVED


def test_a_campaign_message_of_a_domain_demoted_after_reserving_is_not_sent(alex, mta, receiver):
    campaign, warmup = reserve(alex, "c@prospect.test"), reserve(alex, "w@peer.test", kind="warmup")
    SendingDomain.objects.filter(pk=alex.domain_id).update(tier="rehab")
    summary = messages_hand_over()
    assert (summary.sent, summary.failed) == (1, 1)
    (message,) = campaign
    message.refresh_from_db()
    assert message.state == MessageState.FAILED and "fell to rehab" in message.last_error
    assert receiver.count(message.message_id) == 0
    assert receiver.server.wait_for("w@peer.test")  # warm-up mail is what rehab is for
    assert warmup[0].message_id


def test_claimed_messages_never_started_wait_for_the_next_run(alex):
    (message,) = reserve(alex)
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Message.objects.filter(pk=message.pk).update(state=MessageState.SENDING, claimed_at=an_hour_ago)
    assert messages_reconcile()["released"] == 1
    message.refresh_from_db()
    assert message.state == MessageState.RESERVED and message.attempts == 0


def test_reserve_builds_rows_in_the_models_field_order():
    # messages_reserve builds Message rows positionally: a new field must be placed there too.
    assert [f.attname for f in Message._meta.concrete_fields] == [
        "id", "workspace_id", "domain_id", "mailbox_id", "kind", "campaign_ref", "sender",
        "sender_name", "recipient", "recipient_name", "subject", "text_body", "html_body",
        "headers", "message_id", "mta_id", "transport", "state", "attempts", "last_error",
        "maybe_sent", "next_attempt_at", "claimed_at", "attempt_started_at", "handed_over_at",
        "finished_at", "created_at",
    ]  # fmt: skip
