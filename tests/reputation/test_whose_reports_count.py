"""A complaint or an out-of-band bounce counts only when it matches a message the platform sent
for the domain it names; anything else is kept for staff and never scored (SPEC 3.4a,
docs/trust-score.md#whose-reports-count)."""

import time
from datetime import timedelta

import orjson
import pytest
from django.db.models import Sum
from django.utils import timezone

from reputation.mapping import record_key
from reputation.models import Event, PendingRecord, RawRecord, UnmatchedReport
from reputation.services.processing import records_process
from sending.models import Mailbox, MailboxStatus, MessageState, Suppression
from sending.services.domains import domain_create
from sending.services.verification import domain_verify
from tests.conftest import publish
from tests.reputation.records import complaint, oob_bounce, outbound, sent, traffic

pytestmark = pytest.mark.django_db

RCPT = "lee@prospect.test"


@pytest.fixture
def alex(sender) -> Mailbox:
    return Mailbox.objects.get(domain=sender, local_part="alex")


@pytest.fixture
def rival(zone, stranger):
    """Another customer's verified domain."""
    domain = domain_create(
        workspace=stranger.workspace, actor=stranger.user, name="globex-mail.com"
    )
    publish(zone, domain)
    assert domain_verify(domain=domain).verified
    domain.refresh_from_db()
    return domain


def _standing(domain) -> tuple:
    """Everything an unmatched report must leave alone."""
    domain.refresh_from_db()
    sums = domain.daily.aggregate(Sum("complaints"), Sum("hard_bounces"), Sum("soft_bounces"))
    return (
        domain.trust_score,
        domain.tier,
        domain.status,
        tuple(sums.values()),
        Event.objects.filter(domain=domain).count(),
        Suppression.objects.count(),
        sorted(Mailbox.objects.filter(domain=domain).values_list("status", flat=True)),
    )


def test_a_forged_complaint_against_another_domain_is_kept_for_staff_and_never_scored(
    post, sender, staff_client
):
    post(traffic(sender, 100))
    before = _standing(sender)
    # Anyone can mail the feedback address a report whose trace names the victim's tenant.
    post([complaint(sender, "never-sent@example.org")])
    assert _standing(sender) == before
    report = UnmatchedReport.objects.get()
    assert (report.kind, report.tenant, report.domain, report.recipient) == (
        "complaint",
        sender.public_id,
        sender,
        "never-sent@example.org",
    )
    assert report.sender == f"alex@{sender.name}"
    assert "sent nothing to this recipient" in report.reason
    assert report.raw_record.payload.startswith('{"type":"Feedback"')

    page = staff_client.get("/admin/reputation/unmatchedreport/")
    assert page.status_code == 200
    assert "never-sent@example.org" in page.content.decode()
    assert "sent nothing to this recipient" in page.content.decode()
    found = staff_client.get("/admin/reputation/unmatchedreport/", {"q": "never-sent"})
    assert "never-sent@example.org" in found.content.decode()
    detail = staff_client.get(f"/admin/reputation/unmatchedreport/{report.pk}/change/")
    assert detail.status_code == 200 and "feedback_report" in detail.content.decode()


def test_an_out_of_band_bounce_for_mail_we_never_sent_is_kept_and_never_scored(
    post, sender, staff_client
):
    post(traffic(sender, 100))
    before = _standing(sender)
    post([oob_bounce(sender, "stranger@example.org")])
    assert _standing(sender) == before
    report = UnmatchedReport.objects.get()
    assert (report.kind, report.tenant, report.domain, report.recipient) == (
        "bounce",
        "",
        sender,
        "stranger@example.org",
    )
    assert "no message of ours" in report.reason
    page = staff_client.get("/admin/reputation/unmatchedreport/", {"kind__exact": "bounce"})
    assert "stranger@example.org" in page.content.decode()


def test_a_complaint_matching_our_message_by_message_id_counts(post, sender, alex):
    message = outbound(alex, RCPT, state=MessageState.DELIVERED)
    # The Message-ID decides: whom it went to, and that it was a campaign (not warm-up) message.
    post([complaint(sender, "someone@else.test", rfc_message_id=message.message_id, kind="warmup")])
    event = Event.objects.get(kind="complaint")
    assert (event.outbound, event.recipient, event.mailbox) == (message, RCPT, alex)
    assert event.message_kind == "campaign"
    assert sender.daily.get().complaints == 1
    assert Suppression.objects.filter(address=RCPT, reason="complaint").exists()
    assert not Suppression.objects.filter(address="someone@else.test").exists()
    assert Mailbox.objects.get(pk=alex.pk).status == MailboxStatus.ACTIVE
    assert not UnmatchedReport.objects.exists()


def test_a_complaint_matching_a_reception_by_tenant_and_recipient_counts(post, sender, alex):
    post([sent(sender, RCPT, at=time.time() - 7 * 86400)])
    post([complaint(sender, RCPT)])
    event = Event.objects.get(kind="complaint")
    assert (event.recipient, event.mailbox) == (RCPT, alex)
    assert sum(sender.daily.values_list("complaints", flat=True)) == 1
    assert Suppression.objects.filter(address=RCPT, reason="complaint").exists()
    assert not UnmatchedReport.objects.exists()


def test_a_reception_in_the_same_batch_matches_its_complaint(post, sender):
    post([sent(sender, RCPT), complaint(sender, RCPT)])
    assert Event.objects.filter(kind="complaint").count() == 1
    assert not UnmatchedReport.objects.exists()


def test_a_complaint_about_mail_sent_before_the_window_is_unmatched(post, sender):
    post([sent(sender, RCPT, at=time.time() - 40 * 86400)])
    post([complaint(sender, RCPT)])
    assert not Event.objects.filter(kind="complaint").exists()
    assert "30 days" in UnmatchedReport.objects.get().reason


def test_a_matched_out_of_band_bounce_counts_and_bounces_the_message(post, sender, alex):
    handed_over = timezone.now() - timedelta(hours=2)
    message = outbound(alex, RCPT, state=MessageState.HANDED_OVER, handed_over_at=handed_over)
    post([oob_bounce(sender, RCPT)])
    event = Event.objects.get(kind="bounce_hard")
    assert (event.outbound, event.mailbox, event.recipient) == (message, alex, RCPT)
    assert sender.daily.get().hard_bounces == 1
    assert Suppression.objects.filter(address=RCPT, reason="hard_bounce").exists()
    message.refresh_from_db()
    assert message.state == MessageState.BOUNCED and "User unknown" in message.last_error


def test_an_out_of_band_bounce_matches_the_latest_message_before_it_within_days(post, sender, alex):
    now = timezone.now()
    old = outbound(alex, RCPT, state=MessageState.DELIVERED, handed_over_at=now - timedelta(days=9))
    recent = outbound(
        alex, RCPT, state=MessageState.HANDED_OVER, handed_over_at=now - timedelta(days=1)
    )
    post([oob_bounce(sender, RCPT)])
    assert Event.objects.get(kind="bounce_hard").outbound == recent
    old.refresh_from_db()
    assert old.state == MessageState.DELIVERED

    # Relays give up within days: a notification about mail handed over 8 days ago is no match.
    late = "late@prospect.test"
    outbound(alex, late, state=MessageState.HANDED_OVER, handed_over_at=now - timedelta(days=8))
    post([oob_bounce(sender, late)])
    assert "7 days" in UnmatchedReport.objects.get(recipient=late).reason


def test_an_out_of_band_bounce_without_a_message_row_matches_our_reception(post, sender):
    post([sent(sender, RCPT, at=time.time() - 3600)])
    post([oob_bounce(sender, RCPT)])
    assert Event.objects.filter(kind="bounce_hard", recipient=RCPT).count() == 1


def test_a_complaint_claiming_one_domains_message_id_while_naming_another_is_unmatched(
    post, sender, alex, rival
):
    message = outbound(alex, RCPT, state=MessageState.DELIVERED)
    post([sent(rival, RCPT)])  # the rival even sent to that address itself
    before = (_standing(sender), _standing(rival))
    post([complaint(rival, RCPT, rfc_message_id=message.message_id)])
    assert (_standing(sender), _standing(rival)) == before
    report = UnmatchedReport.objects.get()
    assert (report.tenant, report.domain, report.message_id) == (
        rival.public_id,
        rival,
        message.message_id,
    )
    assert "another sending domain" in report.reason


def test_a_report_naming_no_domain_of_ours_is_unmatched(post, sender):
    post([sent(sender, RCPT)])
    post([complaint(sender, RCPT, tenant="dom_nobody")])
    assert "no active sending domain" in UnmatchedReport.objects.get().reason
    assert not Event.objects.filter(kind="complaint").exists()


def test_an_unmatched_report_is_stored_once_however_often_it_is_processed(post, sender):
    forged = complaint(sender, "never-sent@example.org")
    post([forged])
    post([forged])  # the MTA posting it again
    PendingRecord.objects.create(raw_record=RawRecord.objects.get())  # or staff replaying it
    records_process()
    assert UnmatchedReport.objects.count() == 1


def test_the_console_lists_unmatched_reports_in_a_few_queries(
    post, sender, rival, staff_client, django_assert_max_num_queries
):
    post([complaint(sender, f"n{i}@example.org") for i in range(5)])
    post([complaint(rival, f"r{i}@example.org") for i in range(5)])
    post([oob_bounce(sender, f"b{i}@example.org") for i in range(5)])
    assert UnmatchedReport.objects.count() == 15
    with django_assert_max_num_queries(12):
        page = staff_client.get("/admin/reputation/unmatchedreport/")
    assert page.status_code == 200 and page.content.decode().count("example.org</td>") >= 15


@pytest.mark.django_db(transaction=True)
def test_a_complaint_waits_for_an_older_record_another_worker_is_processing(sender):
    """Two workers take consecutive batches: the complaint must not be judged before the
    Reception in the other worker's batch is committed."""
    import psycopg
    from django.db import connection

    from reputation.services.processing import records_process_batch

    reception, report = (
        RawRecord.objects.create(record_key=record_key(r), payload=orjson.dumps(r).decode())
        for r in (sent(sender, RCPT), complaint(sender, RCPT))
    )
    PendingRecord.objects.bulk_create(
        [PendingRecord(raw_record=reception), PendingRecord(raw_record=report)]
    )
    db = connection.settings_dict
    with (
        psycopg.connect(
            host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"]
        ) as other,
        other.transaction(),
    ):
        # The other worker holds the Reception's queue row until it commits.
        other.execute(
            "SELECT 1 FROM reputation_pendingrecord WHERE raw_record_id = %s FOR UPDATE",
            [reception.pk],
        )
        assert records_process_batch().records == 1  # the complaint alone, put back
        assert not UnmatchedReport.objects.exists()
        assert PendingRecord.objects.count() == 2
    records_process_batch()
    assert Event.objects.filter(kind="complaint", recipient=RCPT).count() == 1
    assert not UnmatchedReport.objects.exists()
    assert not PendingRecord.objects.exists()
