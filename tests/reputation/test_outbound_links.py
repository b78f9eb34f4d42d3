"""Our MTA's records attach to the platform's outbound messages and move them forward, never back
(docs/trust-score.md#records-and-the-platforms-messages)."""

import time
from datetime import UTC, datetime

import pytest

from reputation.models import Event
from sending.models import Mailbox, Message, MessageState, Suppression
from tests.reputation.records import (
    delivered,
    hard_bounce,
    outbound,
    reception_failure,
    sent,
    soft_bounce,
)

pytestmark = pytest.mark.django_db

RCPT = "lee@prospect.test"


@pytest.fixture
def alex(sender) -> Mailbox:
    return Mailbox.objects.get(domain=sender, local_part="alex")


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _kinds(message: Message) -> list[str]:
    return sorted(Event.objects.filter(outbound=message).values_list("kind", flat=True))


def test_reception_and_delivery_attach_by_message_id_and_move_the_message_on(post, sender, alex):
    message = outbound(alex, RCPT)
    spool_id, at = "a" * 32, time.time() - 60
    post([sent(sender, RCPT, at=at, message_id=spool_id, rfc_message_id=message.message_id)])
    message.refresh_from_db()
    # The Reception names the spool id; the hand-over itself is booked by the sender (KumoMTA
    # may still drop a message at reception after logging it, and the sender then retries it).
    assert (message.state, message.mta_id) == (MessageState.SENDING, spool_id)
    assert message.handed_over_at is None

    post([delivered(sender, RCPT, message_id=spool_id, rfc_message_id=message.message_id)])
    message.refresh_from_db()
    assert message.state == MessageState.DELIVERED and message.finished_at is not None
    assert _kinds(message) == ["delivered", "sent"]


def test_records_naming_no_message_id_attach_by_the_spool_id(post, sender, alex):
    message = outbound(alex, RCPT, state=MessageState.HANDED_OVER, mta_id="b" * 32)
    post([delivered(sender, RCPT, message_id="b" * 32)])
    message.refresh_from_db()
    assert message.state == MessageState.DELIVERED
    assert _kinds(message) == ["delivered"]


def test_a_logged_message_id_header_attaches_too_and_fills_in_the_spool_id(post, sender, alex):
    message = outbound(alex, RCPT, state=MessageState.HANDED_OVER)
    headers = {"Message-Id": f"<{message.message_id}>"}
    post([sent(sender, RCPT, message_id="c" * 32, headers=headers)])
    message.refresh_from_db()
    assert (message.state, message.mta_id) == (MessageState.HANDED_OVER, "c" * 32)
    assert _kinds(message) == ["sent"]


def test_late_and_replayed_records_never_move_a_message_back(post, sender, alex):
    message = outbound(alex, RCPT)
    ids = {"message_id": "d" * 32, "rfc_message_id": message.message_id}
    t0 = time.time() - 3600
    # One batch, out of order: the bounce wins whatever the order.
    post(
        [
            hard_bounce(sender, RCPT, at=t0 + 60, **ids),
            delivered(sender, RCPT, at=t0 + 30, **ids),
            sent(sender, RCPT, at=t0, **ids),
        ]
    )
    message.refresh_from_db()
    assert message.state == MessageState.BOUNCED
    assert message.finished_at == _at(t0 + 60)
    assert "5.1.1" in message.last_error
    settled = (message.state, message.handed_over_at, message.finished_at, message.mta_id)

    # Later records, and records replayed with other times (new record keys).
    post([delivered(sender, RCPT, at=t0 + 120, **ids), sent(sender, RCPT, at=t0 + 5, **ids)])
    post([sent(sender, RCPT, at=t0 + 6, message_id="e" * 32, rfc_message_id=message.message_id)])
    message.refresh_from_db()
    assert (message.state, message.handed_over_at, message.finished_at, message.mta_id) == settled


def test_a_delivered_message_that_bounces_later_is_bounced(post, sender, alex):
    message = outbound(alex, RCPT, state=MessageState.DELIVERED, mta_id="f" * 32)
    post([hard_bounce(sender, RCPT, message_id="f" * 32)])
    message.refresh_from_db()
    assert message.state == MessageState.BOUNCED


def test_a_soft_bounce_attaches_but_changes_no_state(post, sender, alex):
    message = outbound(alex, RCPT, state=MessageState.HANDED_OVER)
    post([soft_bounce(sender, RCPT, rfc_message_id=message.message_id)])
    message.refresh_from_db()
    assert message.state == MessageState.HANDED_OVER and message.finished_at is None
    assert _kinds(message) == ["bounce_soft"]


def test_a_record_naming_another_tenant_is_not_attached_to_this_domains_message(post, sender, alex):
    message = outbound(alex, RCPT, state=MessageState.HANDED_OVER)
    post([delivered(sender, RCPT, rfc_message_id=message.message_id, meta={"tenant": "dom_x"})])
    message.refresh_from_db()
    assert message.state == MessageState.HANDED_OVER
    assert not Event.objects.filter(outbound=message).exists()


def test_a_record_without_a_tenant_counts_for_the_domain_of_the_message_it_names(
    post, sender, alex
):
    message = outbound(alex, RCPT, state=MessageState.HANDED_OVER)
    post([delivered(sender, RCPT, queue="prospect.test", meta={"message_id": message.message_id})])
    event = Event.objects.get(outbound=message)
    assert (event.domain, event.mailbox) == (sender, alex)


def test_the_bounce_logged_when_queueing_failed_at_reception_counts_nothing(post, sender, alex):
    # The MTA told the sender to try again; the message was not lost, nobody bounced it, and the
    # Reception logged just before did not send it (docs/trust-score.md#receptions-taken-back).
    message = outbound(alex, RCPT)
    ids = {"message_id": "1" * 32, "rfc_message_id": message.message_id}
    post([sent(sender, RCPT, **ids), reception_failure(sender, RCPT, **ids)])
    assert not sender.daily.filter(sent__gt=0).exists()
    assert not sender.daily.filter(hard_bounces__gt=0).exists()
    assert not Event.objects.exists()
    assert not Suppression.objects.filter(address=RCPT).exists()
    message.refresh_from_db()
    assert (message.state, message.mta_id) == (MessageState.SENDING, "")


def test_records_of_the_injection_generator_queue_count_nothing(post, sender):
    # Even one that named a tenant (the real ones name none) is KumoMTA's, not a message of ours.
    generator = {
        "queue": "generator.kumomta.internal",
        "delivery_protocol": "HttpInjectionGenerator",
    }
    post([sent(sender, "x@y.test", **generator), delivered(sender, "x@y.test", **generator)])
    assert not Event.objects.exists()
    assert not sender.daily.exists()


def _batch(sender, alex, n: int, tag: str) -> list[dict]:
    from tests.reputation.records import complaint, oob_bounce

    records = []
    for i in range(n):
        rcpt = f"{tag}{i}@prospect.test"
        message = outbound(alex, rcpt)
        ids = {"message_id": f"{tag}{i:031x}"[:32], "rfc_message_id": message.message_id}
        records += [sent(sender, rcpt, **ids), delivered(sender, rcpt, **ids)]
        records.append(complaint(sender, rcpt, rfc_message_id=message.message_id))
        records.append(oob_bounce(sender, rcpt))
        records.append(complaint(sender, f"nobody-{rcpt}"))
    return records


def test_a_batch_costs_the_same_few_statements_whatever_its_size(sender, alex):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from reputation.services.intake import intake_store
    from reputation.services.processing import records_process_batch

    counts = []
    for n, tag in ((5, "s"), (60, "m")):
        intake_store(records=_batch(sender, alex, n, tag))
        with CaptureQueriesContext(connection) as queries:
            outcome = records_process_batch()
        assert outcome.records == 5 * n
        counts.append(len(queries))
    assert counts[0] == counts[1] and counts[1] <= 30
    assert Message.objects.filter(state=MessageState.BOUNCED).count() == 65
