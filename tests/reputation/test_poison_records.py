"""One bad record must not stop processing: records are cleaned at mapping, a record that still
fails is set aside as a dead letter, and the rest of its batch goes on
(docs/trust-score.md#bad-records)."""

import itertools
import uuid
from dataclasses import replace
from datetime import timedelta

import orjson
import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import AuditLog
from reputation.mapping import (
    ADDRESS_MAX_CHARS,
    EARLIEST_TIME,
    LATEST_TIME,
    map_record,
    record_key,
)
from reputation.models import DeadLetterRecord, Event, PendingRecord, RawRecord
from reputation.services import processing
from reputation.services.intake import intake_store
from reputation.services.processing import records_process
from tests.reputation.records import complaint, delivered, hard_bounce, record, sent, soft_bounce

_serial = itertools.count()

ODD_TEXT = [
    "a\x00b@example.org",
    "\x00",
    "x" * 400 + "@example.org",
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-05:00",
    "not a time",
    "",
    "<>",
    "@",
]
ODD_NUMBERS = [1e300, -1e300, -1e12, 253402300799, 0, -1, 2**63 - 1, -(2**63), 2**64 - 1]
_odd = (
    st.none()
    | st.booleans()
    | st.sampled_from(ODD_TEXT)
    | st.sampled_from(ODD_NUMBERS)
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
_json = st.recursive(
    _odd,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=10,
)
FIELDS = [
    "type",
    "id",
    "sender",
    "recipient",
    "queue",
    "site",
    "size",
    "response",
    "peer_address",
    "timestamp",
    "event_time",
    "created",
    "created_time",
    "num_attempts",
    "bounce_classification",
    "egress_pool",
    "egress_source",
    "feedback_report",
    "meta",
    "headers",
]
REPORT_FIELDS = [
    "feedback_type",
    "original_mail_from",
    "original_rcpto_to",
    "reported_domain",
    "supplemental_trace",
]
TRACE_FIELDS = ["tenant", "recipient", "x_recipient", "id", "message_id", "kind", "campaign"]
TYPES = ["Reception", "Delivery", "Bounce", "TransientFailure", "Expiration", "OOB", "Feedback"]
_odd_record = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES)},
    optional={
        **{name: _json for name in FIELDS if name != "type"},
        "feedback_report": st.fixed_dictionaries(
            {},
            optional={
                **{name: _json for name in REPORT_FIELDS},
                "supplemental_trace": st.dictionaries(st.sampled_from(TRACE_FIELDS), _json),
            },
        ),
        "meta": st.dictionaries(st.sampled_from(["tenant", "kind", "campaign"]), _json),
    },
)
HYPOTHESIS = settings(
    max_examples=25,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


def _store_raw(payload: str) -> RawRecord:
    raw = RawRecord.objects.create(record_key=uuid.uuid4().hex, payload=payload)
    PendingRecord.objects.create(raw_record=raw)
    return raw


def _good(domain) -> tuple[list[dict], str]:
    rcpt = f"good{next(_serial)}@example.org"
    return [sent(domain, rcpt), delivered(domain, rcpt)], rcpt


def _counted(rcpt: str) -> bool:
    kinds = set(Event.objects.filter(recipient=rcpt).values_list("kind", flat=True))
    return kinds == {"sent", "delivered"}


# --- Cleaning at mapping (pure) ----------------------------------------------------------------


@given(_odd_record, st.floats(min_value=1.6e9, max_value=2e9))
def test_mapping_cleans_every_record_to_what_the_database_stores(record, received_at):
    for event in map_record(record, received_at=received_at):
        assert EARLIEST_TIME <= event.occurred_at <= received_at + 3600
        assert event.occurred_at <= LATEST_TIME
        for text in (event.tenant, event.recipient, event.mailbox, event.message_id):
            assert "\x00" not in text
        assert "\x00" not in event.response
        assert len(event.recipient) <= ADDRESS_MAX_CHARS
        assert len(event.message_id) <= 64
    assert len(record_key(record)) == 64


@pytest.mark.parametrize(
    "fields",
    [
        {"timestamp": 1e300},
        {"timestamp": -1e12},
        {"timestamp": 253402300799},  # 9999-12-31
        {"timestamp": None, "event_time": "0001-01-01T00:00:00+05:00"},
        {"timestamp": None, "event_time": "9999-12-31T23:59:59-05:00"},
        {"timestamp": 2e9},  # 2033: ahead of the time it was received
    ],
)
def test_an_unbelievable_time_counts_at_the_time_the_record_was_received(fields):
    [event] = map_record({"type": "Delivery", **fields}, received_at=1.8e9)
    assert event.occurred_at == 1.8e9


def test_ids_and_addresses_with_a_nul_are_unknown_rather_than_another_real_one():
    [event] = map_record(
        {
            "type": "Reception",
            "recipient": "kim\x00@example.org",
            "sender": "al\x00ex@acme.test",
            "meta": {"tenant": "dom_abc\x00"},
            "queue": "dom_real@example.org",
            "response": {"content": "ok\x00"},
        }
    )
    assert (event.recipient, event.mailbox, event.tenant) == ("", "", "dom_real")
    assert event.response == "ok"


# --- The pipeline ------------------------------------------------------------------------------


def _poison(domain) -> list[dict]:
    long_rcpt = "x" * 400 + "@example.org"
    report = complaint(domain, "kim@example.org")
    report["feedback_report"]["original_mail_from"] = "alex\x00@" + domain.name
    report["feedback_report"]["original_rcpto_to"] = [long_rcpt]
    report["feedback_report"]["supplemental_trace"]["recipient"] = "kim\x00@example.org"
    forged = complaint(domain, "lee@example.org")
    forged["feedback_report"]["supplemental_trace"]["tenant"] = domain.public_id + "\x00"
    forged["timestamp"] = 1e300
    no_time = delivered(domain, "t1@example.org")
    del no_time["timestamp"]
    no_time["event_time"] = "0001-01-01T00:00:00+05:00"
    return [
        hard_bounce(domain, "a@example.org", at=1e300),
        delivered(domain, "b@example.org", at=-1e12),
        delivered(domain, "c@example.org", at=253402300799),
        no_time,
        sent(domain, "nul\x00@example.org"),
        sent(domain, "d@example.org", sender="al\x00ex"),
        sent(domain, "e@example.org", meta={"tenant": domain.public_id + "\x00"}),
        hard_bounce(domain, long_rcpt),
        soft_bounce(domain, long_rcpt),
        record("TransientFailure", domain, "f@example.org", message_id="m" * 200),
        report,
        forged,
    ]


@pytest.mark.django_db
def test_a_batch_with_poison_records_counts_the_good_ones_and_moves_on(sender):
    good, rcpt = _good(sender)
    poison = _poison(sender)
    intake_store(records=poison[:6] + good + poison[6:])
    assert records_process() == len(poison) + len(good)
    assert _counted(rcpt)
    assert not PendingRecord.objects.exists()
    # Cleaning made every one of them valid: counted (at the time it was received when its
    # own time was unbelievable), none set aside.
    assert not DeadLetterRecord.objects.exists()
    today = timezone.now().date()
    assert set(sender.daily.values_list("day", flat=True)) == {today}
    day = sender.daily.get()
    assert (day.sent, day.delivered, day.hard_bounces) == (4, 4, 2)
    assert Event.objects.filter(occurred_at__lt=timezone.now() - timedelta(days=1)).count() == 0
    assert records_process() == 0  # nothing old is claimed again


@pytest.mark.django_db
def test_a_record_that_still_fails_becomes_a_dead_letter_and_the_rest_go_on(sender, monkeypatch):
    # A gap in the cleaning, simulated: this record's events reach the database with a NUL.
    mapped = processing.map_record

    def leaky(record, **kw):
        events = mapped(record, **kw)
        if record.get("id") == "leaky":
            return [replace(e, recipient="nul\x00@example.org") for e in events]
        return events

    monkeypatch.setattr(processing, "map_record", leaky)
    good, rcpt = _good(sender)
    more, rcpt2 = _good(sender)
    intake_store(records=[*good, sent(sender, "bad@example.org", message_id="leaky"), *more])
    corrupt = _store_raw("{not json")
    assert records_process() == 6
    assert _counted(rcpt) and _counted(rcpt2)
    assert sender.daily.get().sent == 2
    dead = DeadLetterRecord.objects.order_by("raw_record_id")
    assert len(dead) == 2
    assert dead[1].raw_record_id == corrupt.pk and "JSONDecodeError" in dead[1].error
    assert orjson.loads(dead[0].raw_record.payload)["id"] == "leaky"
    assert dead[0].error and dead[0].attempts == 1
    assert not PendingRecord.objects.exists()
    assert records_process() == 0


@pytest.mark.django_db
def test_staff_see_dead_letters_and_replay_them_with_a_reason(sender, staff_client):
    good, rcpt = _good(sender)
    raw = _store_raw(orjson.dumps(good[0]).decode())
    PendingRecord.objects.filter(raw_record=raw).delete()
    dead = DeadLetterRecord.objects.create(raw_record=raw, error="DataError: NUL in recipient")

    listing = staff_client.get("/admin/reputation/deadletterrecord/", {"q": "NUL"})
    assert listing.status_code == 200 and "DataError: NUL in recipient" in listing.content.decode()
    page = staff_client.get(f"/admin/reputation/deadletterrecord/{dead.pk}/change/")
    assert page.status_code == 200 and "Replay" in page.content.decode()
    asked = staff_client.post(
        "/admin/reputation/deadletterrecord/",
        {"action": "replay", "_selected_action": [dead.pk]},
    )
    assert asked.templates[0].name == "admin/action_reason.html"
    assert not PendingRecord.objects.exists()

    response = staff_client.post(
        "/admin/reputation/deadletterrecord/",
        {"action": "replay", "_selected_action": [dead.pk], "apply": "1", "reason": "Fixed"},
    )
    assert response.status_code == 302
    assert PendingRecord.objects.filter(raw_record=raw).exists()
    dead.refresh_from_db()
    assert dead.replayed_at is not None
    log = AuditLog.objects.get(action="reputation.dead_letter_replay")
    assert (log.reason, log.actor.email) == ("Fixed", "ops@ops.test")
    assert records_process() == 1
    assert Event.objects.filter(recipient=rcpt, kind="sent").exists()


@pytest.mark.django_db
def test_a_replayed_record_that_fails_again_counts_one_more_attempt(sender):
    raw = _store_raw("[1, 2")
    records_process()
    dead = DeadLetterRecord.objects.get(raw_record=raw)
    PendingRecord.objects.create(raw_record=raw)
    records_process()
    dead.refresh_from_db()
    assert dead.attempts == 2 and dead.last_failed_at >= dead.first_failed_at


@pytest.mark.django_db
@HYPOTHESIS
@given(value=_json)
def test_any_json_value_as_a_record_never_stops_the_good_ones(sender, value):
    good, rcpt = _good(sender)
    intake_store(records=good[:1])
    _store_raw(orjson.dumps(value).decode())
    intake_store(records=good[1:])
    records_process()
    assert _counted(rcpt)
    assert not PendingRecord.objects.exists()


@pytest.mark.django_db
@HYPOTHESIS
@given(fields=_odd_record, with_tenant=st.booleans())
def test_a_record_with_odd_field_values_never_stops_the_good_ones(sender, fields, with_tenant):
    base = record(fields["type"], sender, f"odd{next(_serial)}@example.org")
    odd = {**base, **fields}
    if with_tenant and isinstance(odd.get("meta"), dict):
        odd["meta"] = {**odd["meta"], "tenant": sender.public_id}
    good, rcpt = _good(sender)
    intake_store(records=[good[0], odd, good[1]])
    records_process()
    assert _counted(rcpt)
    assert not PendingRecord.objects.exists()
