"""A complaint counts once per message we sent: whoever received one genuine message (every
warm-up peer does) could otherwise mail any number of reports quoting it, each with a new record
id (docs/trust-score.md#whose-reports-count)."""

import threading
import time

import orjson
import pytest
from django.db.models import Sum
from django.utils import timezone

from reputation.mapping import record_key
from reputation.models import (
    DomainDailyMetrics,
    Event,
    PendingRecord,
    RawRecord,
    ReputationAlert,
    UnmatchedReport,
)
from sending.models import Mailbox, MailboxStatus, MessageState, Suppression
from tests.reputation.records import complaint, outbound, pause_in_first_worker, sent

pytestmark = pytest.mark.django_db

RCPT = "lee@prospect.test"
REPLAYS = 5


@pytest.fixture
def alex(sender) -> Mailbox:
    return Mailbox.objects.get(domain=sender, local_part="alex")


@pytest.fixture
def window(sender):
    """Today's numbers before the complaints: 2,000 sent, 30 % replies, 60 % opens (T = 107
    before clamping; each complaint costs 50 points)."""
    DomainDailyMetrics.objects.create(
        domain=sender,
        day=timezone.now().date(),
        sent=2000,
        delivered=2000,
        replies=600,
        unique_opens=1200,
    )


def _standing(domain) -> tuple:
    domain.refresh_from_db()
    return (
        domain.trust_score,
        domain.tier,
        domain.status,
        domain.daily.aggregate(Sum("complaints"))["complaints__sum"],
        Event.objects.filter(kind="complaint").count(),
        sorted(Suppression.objects.values_list("address", "reason")),
        sorted(Mailbox.objects.filter(domain=domain).values_list("status", flat=True)),
        ReputationAlert.objects.count(),
    )


def _post_replays(post, records: list[dict], batches: str) -> None:
    if batches == "one batch":
        post(records)
    else:
        for record in records:
            post([record])


def _repeats(n: int) -> None:
    reports = list(UnmatchedReport.objects.all())
    assert len(reports) == n
    assert all("a complaint about this message was already counted" in r.reason for r in reports)
    assert len({r.source_key for r in reports}) == n


@pytest.mark.parametrize("batches", ["one batch", "separate batches"])
def test_a_complaint_replayed_with_new_record_ids_counts_once(post, sender, alex, window, batches):
    message = outbound(alex, RCPT, state=MessageState.DELIVERED)
    post([complaint(sender, RCPT, rfc_message_id=message.message_id)])
    once = _standing(sender)
    assert once[0] == 57  # 107 - 50: one complaint in 2,000
    assert once[3:6] == (1, 1, [(RCPT, "complaint")])

    # The same report again and again: new spool ids, the same Message-ID; naming any recipient.
    replays = [
        complaint(sender, rcpt, rfc_message_id=message.message_id)
        for rcpt in [RCPT] * (REPLAYS - 1) + ["someone@else.test"]
    ]
    _post_replays(post, replays, batches)
    assert _standing(sender) == once
    _repeats(REPLAYS)
    assert UnmatchedReport.objects.filter(domain=sender, message_id=message.message_id).count() == 5


def test_copies_in_the_batch_of_the_first_count_once(post, sender, alex, window):
    message = outbound(alex, RCPT, state=MessageState.DELIVERED)
    copies = [complaint(sender, RCPT, rfc_message_id=message.message_id) for _ in range(6)]
    post(copies[::-1])  # whatever the order in the batch, the earliest counts
    standing = _standing(sender)
    assert standing[0] == 57
    assert standing[3:6] == (1, 1, [(RCPT, "complaint")])
    _repeats(5)
    counted = Event.objects.get(kind="complaint")
    assert counted.source_key.startswith(record_key(copies[0]))


def test_a_replayed_warm_up_complaint_does_not_pause_the_mailbox_again(post, sender, alex):
    message = outbound(alex, RCPT, state=MessageState.DELIVERED, kind="warmup")
    post([complaint(sender, RCPT, rfc_message_id=message.message_id)])
    assert Mailbox.objects.get(pk=alex.pk).status == MailboxStatus.PAUSED
    Mailbox.objects.filter(pk=alex.pk).update(status=MailboxStatus.ACTIVE)  # staff reviewed it

    for _ in range(3):
        post([complaint(sender, RCPT, rfc_message_id=message.message_id)])
    assert Mailbox.objects.get(pk=alex.pk).status == MailboxStatus.ACTIVE
    assert sender.daily.get().complaints == 1
    _repeats(3)


def test_a_complaint_about_another_message_to_the_same_recipient_counts(post, sender, alex):
    first = outbound(alex, RCPT, state=MessageState.DELIVERED)
    second = outbound(alex, RCPT, state=MessageState.DELIVERED)
    post([complaint(sender, RCPT, rfc_message_id=first.message_id)])
    post([complaint(sender, RCPT, rfc_message_id=second.message_id)])
    assert sender.daily.get().complaints == 2
    assert not UnmatchedReport.objects.exists()


def test_a_complaint_matched_through_a_reception_linked_to_a_message_counts_per_message(
    post, sender, alex
):
    # A replay naming no Message-ID matches our Reception, which names the message.
    message = outbound(alex, RCPT, state=MessageState.DELIVERED)
    post([sent(sender, RCPT, at=time.time() - 3600, rfc_message_id=message.message_id)])
    post([complaint(sender, RCPT, rfc_message_id=message.message_id)])
    post([complaint(sender, RCPT), complaint(sender, RCPT)])
    assert Event.objects.get(kind="complaint").outbound == message
    assert sender.daily.get().complaints == 1
    _repeats(2)


@pytest.mark.parametrize("batches", ["one batch", "separate batches"])
def test_complaints_matched_only_through_a_reception_count_once_per_recipient_in_the_window(
    post, sender, batches
):
    # No Message row: our MTA's Reception is all there is, so one per domain and recipient.
    post([sent(sender, RCPT, at=time.time() - 3 * 86400)])
    _post_replays(post, [complaint(sender, RCPT) for _ in range(REPLAYS + 1)], batches)
    assert sum(sender.daily.values_list("complaints", flat=True)) == 1
    assert Event.objects.filter(kind="complaint", recipient=RCPT).count() == 1
    assert Suppression.objects.filter(address=RCPT).count() == 1
    _repeats(REPLAYS)
    assert all("30 days" in r.reason for r in UnmatchedReport.objects.all())

    # Another recipient of the domain is another complaint.
    other = "kim@prospect.test"
    post([sent(sender, other, at=time.time() - 3600)])
    post([complaint(sender, other)])
    assert Event.objects.filter(kind="complaint", recipient=other).count() == 1


def test_a_reception_only_complaint_long_after_the_counted_one_counts_again(post, sender):
    now = time.time()
    post([sent(sender, RCPT, at=now - 70 * 86400)])
    post([complaint(sender, RCPT, at=now - 69 * 86400)])
    post([sent(sender, RCPT, at=now - 86400)])
    post([complaint(sender, RCPT, at=now)])
    assert Event.objects.filter(kind="complaint", recipient=RCPT).count() == 2
    assert not UnmatchedReport.objects.exists()


def test_checking_for_repeats_costs_the_same_few_statements_whatever_the_batch(sender, alex):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from reputation.services.intake import intake_store
    from reputation.services.processing import records_process_batch

    counts = []
    for n in (3, 40):
        records = []
        for i in range(n):
            message = outbound(alex, f"r{n}-{i}@prospect.test", state=MessageState.DELIVERED)
            rcpt = f"s{n}-{i}@prospect.test"
            records += [
                complaint(sender, "x@y.test", rfc_message_id=message.message_id),
                complaint(sender, "x@y.test", rfc_message_id=message.message_id),
                sent(sender, rcpt),
                complaint(sender, rcpt),
                complaint(sender, rcpt),
            ]
        intake_store(records=records)
        with CaptureQueriesContext(connection) as queries:
            records_process_batch()
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert Event.objects.filter(kind="complaint").count() == 3 * 2 + 40 * 2


@pytest.mark.django_db(transaction=True)
def test_two_workers_judging_replays_of_one_complaint_count_it_once(sender, alex, monkeypatch):
    """Each worker holds one copy in its batch: the second waits for the first to commit, then
    sees its complaint."""
    from reputation.services import processing

    message = outbound(alex, RCPT, state=MessageState.DELIVERED)
    raws = [
        RawRecord.objects.create(record_key=record_key(r), payload=orjson.dumps(r).decode())
        for r in (
            complaint(sender, RCPT, rfc_message_id=message.message_id),
            complaint(sender, RCPT, rfc_message_id=message.message_id),
        )
    ]
    PendingRecord.objects.bulk_create([PendingRecord(raw_record=raw) for raw in raws])

    inserted, release = pause_in_first_worker(monkeypatch, processing, "_events_insert")
    outcomes = {}

    def work() -> None:
        from django.db import connection

        try:
            outcomes[threading.current_thread().name] = processing.records_process_batch(limit=1)
        finally:
            connection.close()

    first = threading.Thread(target=work, name="first")
    second = threading.Thread(target=work, name="second")
    first.start()
    assert inserted.wait(10)  # the first counted its copy and has not committed yet
    second.start()
    second.join(1)
    assert second.is_alive()  # waiting for the first
    release.set()
    first.join(10)
    second.join(10)
    assert outcomes["first"].events == 1 and outcomes["second"].events == 0
    assert Event.objects.filter(kind="complaint").count() == 1
    assert DomainDailyMetrics.objects.get(domain=sender).complaints == 1
    _repeats(1)
