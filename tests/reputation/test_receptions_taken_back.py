"""KumoMTA logs a Reception, then, when it cannot queue the message, a Bounce that takes it back
(the sender is told to try again): the message was never sent, whichever record processing sees
first (docs/trust-score.md#receptions-taken-back)."""

import threading
import time
from datetime import timedelta

import orjson
import pytest
from django.db.models import Sum
from django.utils import timezone

from reputation.mapping import RECEPTION_FAILURES, record_key
from reputation.models import (
    DomainDailyMetrics,
    Event,
    MailboxDailyMetrics,
    PendingRecord,
    RawRecord,
    UndoneReception,
    UnmatchedReport,
)
from sending.models import Mailbox, MessageState, Suppression
from tests.reputation.records import (
    complaint,
    outbound,
    pause_in_first_worker,
    reception_failure,
    sent,
)

pytestmark = pytest.mark.django_db

RCPT = "lee@prospect.test"
SPOOL_ID = "1" * 32


@pytest.fixture
def alex(sender) -> Mailbox:
    return Mailbox.objects.get(domain=sender, local_part="alex")


def _sent_counts(domain, mailbox) -> tuple:
    """(sent, warmup_sent) of the domain and of the mailbox, all days."""

    def sums(rows) -> tuple:
        found = rows.aggregate(Sum("sent"), Sum("warmup_sent"))
        return (found["sent__sum"] or 0, found["warmup_sent__sum"] or 0)

    return (
        sums(DomainDailyMetrics.objects.filter(domain=domain)),
        sums(MailboxDailyMetrics.objects.filter(mailbox=mailbox)),
    )


def _never_sent(message, domain, mailbox) -> None:
    message.refresh_from_db()
    assert message.mta_id == ""
    assert message.state == MessageState.SENDING  # the sender retries it
    assert not Event.objects.filter(outbound=message).exists()
    assert not Event.objects.filter(kind="sent", message_id=SPOOL_ID).exists()
    assert not Event.objects.exclude(kind="sent").exists()  # and no bounce
    assert _sent_counts(domain, mailbox) == ((0, 0), (0, 0))
    assert not Suppression.objects.exists()
    assert UndoneReception.objects.get().spool_id == SPOOL_ID


def _pair(sender, message, kind: str = "campaign") -> tuple[dict, dict]:
    ids = {"message_id": SPOOL_ID, "rfc_message_id": message.message_id}
    meta = {"tenant": sender.public_id, "kind": kind, "message_id": message.message_id}
    at = time.time() - 60
    return (
        sent(sender, RCPT, at=at, meta=meta, **ids),
        reception_failure(sender, RCPT, at=at + 0.01, meta=dict(meta), **ids),
    )


@pytest.mark.parametrize("order", ["reception first", "bounce first"])
def test_in_one_batch_nothing_was_sent(post, sender, alex, order):
    message = outbound(alex, RCPT)
    reception, failure = _pair(sender, message)
    post([reception, failure] if order == "reception first" else [failure, reception])
    _never_sent(message, sender, alex)


@pytest.mark.parametrize("kind", ["campaign", "warmup"])
def test_a_reception_counted_in_an_earlier_batch_is_taken_back(post, sender, alex, kind):
    message = outbound(alex, RCPT, kind=kind)
    reception, failure = _pair(sender, message, kind)
    post([reception])
    message.refresh_from_db()
    assert message.mta_id == SPOOL_ID
    assert Event.objects.filter(outbound=message, kind="sent").exists()
    warmup = int(kind == "warmup")
    assert _sent_counts(sender, alex) == ((1, warmup), (1, warmup))

    post([failure])
    _never_sent(message, sender, alex)


def test_a_reception_processed_after_its_bounce_is_never_counted(post, sender, alex):
    message = outbound(alex, RCPT)
    reception, failure = _pair(sender, message)
    post([failure])
    post([reception])
    _never_sent(message, sender, alex)


@pytest.mark.parametrize("text", RECEPTION_FAILURES)
def test_either_text_takes_the_reception_back(post, sender, alex, text):
    message = outbound(alex, RCPT)
    reception, failure = _pair(sender, message)
    failure["response"]["content"] = f"{text}: no egress pool for tenant"
    post([reception])
    post([failure])
    _never_sent(message, sender, alex)


def test_other_receptions_and_the_day_s_other_mail_keep_their_counts(post, sender, alex):
    message = outbound(alex, RCPT)
    reception, failure = _pair(sender, message)
    post([reception, sent(sender, "kim@prospect.test"), sent(sender, "max@prospect.test")])
    post([failure])
    assert _sent_counts(sender, alex) == ((2, 0), (2, 0))
    assert Event.objects.filter(kind="sent").count() == 2


def test_a_retry_that_was_queued_keeps_its_spool_id(post, sender, alex):
    # The sender retried, and the second Reception (its own spool id) was queued; the first's
    # failure arrives only after both Receptions.
    message = outbound(alex, RCPT)
    reception, failure = _pair(sender, message)
    retry = dict(reception, id="2" * 32, timestamp=reception["timestamp"] + 30)
    post([reception, retry])
    message.refresh_from_db()
    assert message.mta_id == SPOOL_ID  # the earliest Reception
    post([failure])
    message.refresh_from_db()
    assert message.mta_id == "2" * 32
    assert list(Event.objects.filter(outbound=message).values_list("message_id", flat=True)) == [
        "2" * 32
    ]
    assert _sent_counts(sender, alex) == ((1, 0), (1, 0))


def test_a_remote_reply_quoting_those_words_is_still_a_bounce(post, sender, alex):
    message = outbound(alex, RCPT)
    ids = {"message_id": SPOOL_ID, "rfc_message_id": message.message_id}
    quoted = reception_failure(sender, RCPT, **ids)
    quoted.update(num_attempts=2, bounce_classification="InvalidRecipient")
    post([sent(sender, RCPT, **ids)])
    post([quoted])
    message.refresh_from_db()
    assert (message.state, message.mta_id) == (MessageState.BOUNCED, SPOOL_ID)
    assert sorted(Event.objects.filter(outbound=message).values_list("kind", flat=True)) == [
        "bounce_hard",
        "sent",
    ]
    day = sender.daily.get()
    assert (day.sent, day.hard_bounces) == (1, 1)
    assert Suppression.objects.filter(address=RCPT, reason="hard_bounce").exists()
    assert not UndoneReception.objects.exists()


@pytest.mark.parametrize("taken_back", [False, True])
def test_a_reception_taken_back_is_no_proof_of_a_hand_over(
    post, sender, alex, settings, taken_back
):
    # The worker handing the message over died before it heard the MTA's answer.
    from sending.models import Message
    from sending.services.outbound import messages_reconcile

    message = outbound(alex, RCPT)
    Message.objects.filter(pk=message.pk).update(attempt_started_at=timezone.now())
    reception, failure = _pair(sender, message)
    post([reception])
    if taken_back:
        post([failure])
    later = timezone.now() + timedelta(seconds=settings.OUTBOUND_HANDOVER_LEASE_SECONDS + 60)
    counts = messages_reconcile(now=later)
    assert (counts["proven"], counts["resent"]) == ((0, 1) if taken_back else (1, 0))


def test_a_complaint_cannot_match_a_reception_that_was_taken_back(post, sender):
    # Our MTA's Reception with no Message row (the trace names the tenant and recipient only).
    post([sent(sender, RCPT, message_id=SPOOL_ID, at=time.time() - 3600)])
    post([reception_failure(sender, RCPT, message_id=SPOOL_ID, at=time.time() - 3599)])
    post([complaint(sender, RCPT)])
    assert not Event.objects.exists()
    assert "sent nothing to this recipient" in UnmatchedReport.objects.get().reason


def test_a_batch_taking_receptions_back_costs_the_same_few_statements(sender, alex):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from reputation.services.intake import intake_store
    from reputation.services.processing import records_process_batch

    counts = []
    for n, tag in ((3, "a"), (40, "b")):
        receptions, failures = [], []
        for i in range(n):
            rcpt = f"{tag}{i}@prospect.test"
            message = outbound(alex, rcpt)
            ids = {"message_id": f"{tag}{i:031x}", "rfc_message_id": message.message_id}
            receptions.append(sent(sender, rcpt, **ids))
            failures.append(reception_failure(sender, rcpt, **ids))
        intake_store(records=receptions)
        records_process_batch()
        intake_store(records=failures)
        with CaptureQueriesContext(connection) as queries:
            records_process_batch()
        counts.append(len(queries))
    assert counts[0] == counts[1] and counts[1] <= 20
    assert not Event.objects.exists()
    assert not DomainDailyMetrics.objects.filter(sent__gt=0).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first", ["reception", "bounce"])
def test_two_workers_holding_the_two_records_at_once(sender, alex, monkeypatch, first):
    """The worker with the older record has not committed when the other one starts: the second
    waits, then sees the first's work, whatever the order of the two records."""
    from reputation.services import processing

    message = outbound(alex, RCPT)
    reception, failure = _pair(sender, message)
    records = [reception, failure] if first == "reception" else [failure, reception]
    raws = [
        RawRecord.objects.create(record_key=record_key(r), payload=orjson.dumps(r).decode())
        for r in records
    ]
    PendingRecord.objects.bulk_create([PendingRecord(raw_record=raw) for raw in raws])

    busy, release = pause_in_first_worker(monkeypatch, processing, "_outbound_advance")

    def work() -> None:
        from django.db import connection

        try:
            processing.records_process_batch(limit=1)
        finally:
            connection.close()

    older = threading.Thread(target=work, name="first")
    newer = threading.Thread(target=work, name="second")
    older.start()
    assert busy.wait(10)
    newer.start()
    newer.join(1)
    assert newer.is_alive()  # waiting for the first worker
    release.set()
    older.join(10)
    newer.join(10)
    assert not PendingRecord.objects.exists()
    _never_sent(message, sender, alex)
