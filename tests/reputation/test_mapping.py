"""KumoMTA log records -> normalized events (pure module, no database)."""

import copy
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reputation.mapping import (
    GENERATOR_QUEUE,
    RECEPTION_FAILURES,
    SPAM_BLOCK_CLASSES,
    TRANSIENT_CLASSES,
    EventKind,
    MappedEvent,
    map_record,
    message_id_of,
    record_key,
    tenant_of,
)

ROOT = Path(__file__).resolve().parents[2]
TENANT = "dom_7f3k2q9x"
SPOOL_ID = "d7ef132b5d7711eda6e600155d0bb3ff"
MESSAGE_ID = "6c1f0a9e3b2d4c5e8f7a6b5c4d3e2f10@acme-mail.com"
UNKNOWN_USER = {
    "code": 550,
    "enhanced_code": {"class": 5, "subject": 1, "detail": 1},
    "content": "<x@y>: Recipient address rejected: User unknown",
    "command": "RCPT TO:<x@y>\r\n",
}
MAILBOX_FULL = {
    "code": 452,
    "enhanced_code": {"class": 4, "subject": 2, "detail": 2},
    "content": "Mailbox full",
    "command": ".\r\n",
}
SPAMHAUS = {
    "code": 554,
    "enhanced_code": {"class": 5, "subject": 7, "detail": 1},
    "content": "Service unavailable; Client host [203.0.113.5] blocked using zen.spamhaus.org",
    "command": "RCPT TO:<kim@example.org>\r\n",
}


def _record(record_type: str, **fields) -> dict:
    """A record shaped like the ones a KumoMTA node posts to the log hook."""
    record = {
        "type": record_type,
        "id": SPOOL_ID,
        "sender": "Anna@Acme-Mail.com",
        "recipient": "Kim.Lee@Example.org",
        "queue": f"launch-q3:{TENANT}@example.org",
        "site": "warm-1->mx.example.org",
        "size": 14213,
        "response": {
            "code": 250,
            "enhanced_code": {"class": 2, "subject": 0, "detail": 0},
            "content": "Ok: queued as 4VxYz12abc",
            "command": ".\r\n",
        },
        "peer_address": {"name": "mx.example.org.", "addr": "198.51.100.25"},
        "timestamp": 1718031234,
        "event_time": "2024-06-10T14:53:54.123456789Z",
        "created": 1718031230,
        "num_attempts": 1,
        "bounce_classification": "Uncategorized",
        "egress_pool": "standard",
        "egress_source": "standard-1",
        "feedback_report": None,
        "meta": {"tenant": TENANT, "campaign": "launch-q3", "kind": "campaign"},
        "headers": {},
        "delivery_protocol": "ESMTP",
        "nodeid": "5e2c5ac6-1d8a-4a0a-9c1e-0a5c8c3f2b11",
    }
    record.update(fields)
    return record


def _feedback(trace=None, **report_fields) -> dict:
    report = {
        "feedback_type": "abuse",
        "user_agent": "Yahoo!-Mail-Feedback/2.0",
        "version": "1",
        "original_mail_from": "<Anna@Acme-Mail.com>",
        "original_rcpto_to": ["kim.lee@yahoo.com"],
        "reported_domain": ["acme-mail.com"],
        "source_ip": "203.0.113.5",
        "supplemental_trace": trace,
    }
    report.update(report_fields)
    return _record(
        "Feedback",
        id="a1c0ffee5d7711eda6e600155d0bb3ff",
        sender="feedback@arf.mail.yahoo.com",
        recipient="fbl@fbl.trustgate.example",
        queue="fbl.trustgate.example",
        response={"code": 250, "enhanced_code": None, "content": "", "command": None},
        num_attempts=0,
        meta={},
        feedback_report=report,
    )


def _kinds(record: dict) -> list[EventKind]:
    return [event.kind for event in map_record(record)]


# --- the rules ---------------------------------------------------------------------------------


def test_it_maps_reception_to_sent_with_the_message_context():
    meta = {"tenant": TENANT, "campaign": "launch-q3", "kind": "campaign", "message_id": MESSAGE_ID}
    [event] = map_record(_record("Reception", num_attempts=0, egress_pool=None, meta=meta))
    assert event == MappedEvent(
        kind=EventKind.SENT,
        tenant=TENANT,
        recipient="kim.lee@example.org",
        message_id=SPOOL_ID,
        occurred_at=1718031234.0,
        classification="Uncategorized",
        response="250 2.0.0 Ok: queued as 4VxYz12abc",
        mailbox="anna@acme-mail.com",
        message_kind="campaign",
        campaign="launch-q3",
        record_type="Reception",
        rfc_message_id=MESSAGE_ID,
    )


def test_it_maps_delivery_to_delivered():
    assert _kinds(_record("Delivery")) == [EventKind.DELIVERED]


def test_it_maps_an_unknown_user_bounce_to_a_hard_bounce():
    record = _record(
        "Bounce", response=UNKNOWN_USER, bounce_classification="InvalidRecipient", num_attempts=1
    )
    [event] = map_record(record)
    assert event.kind == EventKind.BOUNCE_HARD
    assert event.classification == "InvalidRecipient"
    assert event.response == "550 5.1.1 <x@y>: Recipient address rejected: User unknown"


@pytest.mark.parametrize("record_type", ["Bounce", "Expiration", "OOB"])
def test_it_maps_permanent_failures_to_hard_bounces(record_type):
    expired = {
        "code": 551,
        "enhanced_code": {"class": 5, "subject": 4, "detail": 7},
        "content": "Next delivery time would be at 2024-06-17T14:53:54Z which exceeds the expiry "
        "time 2024-06-17T14:00:00Z configured via set_scheduling",
        "command": None,
    }
    record = _record(record_type, response=expired, bounce_classification="MessageExpired")
    assert _kinds(record) == [EventKind.BOUNCE_HARD]


@pytest.mark.parametrize("record_type", ["Bounce", "Expiration", "OOB"])
@pytest.mark.parametrize("classification", sorted(TRANSIENT_CLASSES))
def test_it_maps_permanent_failures_of_a_transient_class_to_soft_bounces(
    record_type, classification
):
    record = _record(record_type, response=MAILBOX_FULL, bounce_classification=classification)
    [event] = map_record(record)
    assert event.kind == EventKind.BOUNCE_SOFT
    assert event.response == "452 4.2.2 Mailbox full"


@pytest.mark.parametrize("classification", sorted(SPAM_BLOCK_CLASSES))
def test_it_maps_spam_classes_to_spam_blocks_instead_of_hard_bounces(classification):
    response = {
        "code": 550,
        "enhanced_code": {"class": 5, "subject": 7, "detail": 1},
        "content": "[203.0.113.5] Our system has detected that this message is likely "
        "unsolicited mail. 5184530722af.364 - gsmtp",
        "command": ".\r\n",
    }
    record = _record("Bounce", response=response, bounce_classification=classification)
    assert _kinds(record) == [EventKind.SPAM_BLOCK]


@pytest.mark.parametrize(
    "content",
    [
        "Service unavailable; Client host [203.0.113.5] blocked using zen.spamhaus.org",
        "Unfortunately, messages from [203.0.113.5] weren't sent. Please contact your Internet "
        "service provider since part of their network is on our block list (S3150).",
        "Rejected: 203.0.113.5 listed at bl.spamcop.net",
        "5.7.606 Access denied, banned sending IP [203.0.113.5]. To request removal from this "
        "list please visit https://sender.office.com/",
    ],
)
def test_it_maps_blocklist_responses_to_spam_blocks_whatever_the_classifier_said(content):
    # The stock IANA rules file a 5.7.1 DNSBL rejection under AuthenticationFailed.
    response = dict(SPAMHAUS, content=content)
    record = _record("Bounce", response=response, bounce_classification="AuthenticationFailed")
    [event] = map_record(record)
    assert event.kind == EventKind.SPAM_BLOCK
    assert event.classification == "AuthenticationFailed"


@pytest.mark.parametrize("record_type", ["Bounce", "OOB", "TransientFailure"])
def test_it_ignores_auto_replies(record_type):
    response = dict(UNKNOWN_USER, content="I am out of the office until Monday")
    record = _record(record_type, response=response, bounce_classification="AutoReply")
    assert map_record(record) == []


def test_it_maps_transient_failure_to_a_soft_bounce_even_on_the_fifth_attempt():
    # Five in a row become a hard bounce in the service, which sees the history; not here.
    for attempt in range(1, 6):
        record = _record(
            "TransientFailure",
            response=MAILBOX_FULL,
            bounce_classification="QuotaIssues",
            num_attempts=attempt,
        )
        assert _kinds(record) == [EventKind.BOUNCE_SOFT]


def test_it_maps_feedback_to_a_complaint_from_the_supplemental_trace():
    trace = {"tenant": TENANT, "recipient": "Kim.Lee@yahoo.com", "id": SPOOL_ID}
    [event] = map_record(_feedback(trace))
    assert event.kind == EventKind.COMPLAINT
    assert event.tenant == TENANT
    assert event.recipient == "kim.lee@yahoo.com"
    assert event.message_id == SPOOL_ID
    assert event.mailbox == "anna@acme-mail.com"
    assert event.occurred_at == 1718031234.0


def test_it_reads_a_supplemental_trace_given_as_a_json_string():
    trace = json.dumps(
        {
            "tenant": TENANT,
            "x_recipient": "kim.lee@yahoo.com",
            "id": SPOOL_ID,
            "message_id": MESSAGE_ID,
        }
    )
    [event] = map_record(_feedback(trace))
    assert (event.kind, event.tenant, event.recipient, event.message_id) == (
        EventKind.COMPLAINT,
        TENANT,
        "kim.lee@yahoo.com",
        SPOOL_ID,
    )
    assert (event.record_type, event.rfc_message_id) == ("Feedback", MESSAGE_ID)


def test_it_never_takes_the_complainer_from_the_reports_own_envelope():
    record = _feedback({"tenant": TENANT})  # no traced recipient
    [event] = map_record(record)
    assert event.recipient == "kim.lee@yahoo.com"  # from original_rcpto_to
    assert event.recipient != record["recipient"]
    assert event.mailbox != record["sender"]
    assert event.message_id == ""  # the report's own spool id is not the original message's


def test_it_still_records_a_complaint_without_trace_or_original_recipient():
    [event] = map_record(_feedback(None, original_rcpto_to=[], original_mail_from=None))
    assert (event.kind, event.tenant, event.recipient, event.mailbox) == (
        EventKind.COMPLAINT,
        "",
        "",
        "",
    )


def test_it_survives_a_malformed_supplemental_trace():
    [event] = map_record(_feedback("{not json"))
    assert event.kind == EventKind.COMPLAINT
    assert event.recipient == "kim.lee@yahoo.com"


@pytest.mark.parametrize(
    "record_type",
    [
        "AdminBounce",
        "Rejection",
        "Delayed",
        "XferOut",
        "XferIn",
        "AdminRebind",
        "DeferredInjectionRebind",
        "SomethingKumoAddsIn2027",
    ],
)
def test_it_accepts_and_ignores_other_record_types(record_type):
    assert map_record(_record(record_type)) == []


def test_it_emits_one_event_per_recipient_when_recipient_is_a_list():
    record = _record("Delivery", recipient=["A@example.org", "b@example.org", ""])
    events = map_record(record)
    assert [event.recipient for event in events] == ["a@example.org", "b@example.org"]
    assert {event.message_id for event in events} == {SPOOL_ID}


def test_it_keeps_a_record_without_recipient_unattributed():
    record = _record("Reception")
    del record["recipient"]
    [event] = map_record(record)
    assert (event.kind, event.recipient) == (EventKind.SENT, "")


@pytest.mark.parametrize(
    ("queue", "tenant"),
    [
        (f"launch-q3:{TENANT}@gmail.com", TENANT),
        (f"{TENANT}@gmail.com", TENANT),
        (f"a:b:{TENANT}@gmail.com", TENANT),
        ("gmail.com", ""),
        ("launch-q3:gmail.com", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_it_parses_the_tenant_from_the_queue_name(queue, tenant):
    record = _record("Delivery", queue=queue, meta={})
    assert tenant_of(record) == tenant
    assert map_record(record)[0].tenant == tenant


def test_meta_tenant_wins_over_the_queue_name():
    record = _record("Delivery", queue="other@gmail.com", meta={"tenant": TENANT})
    assert tenant_of(record) == TENANT


def test_the_traced_tenant_wins_for_feedback():
    record = _feedback({"tenant": TENANT}, original_rcpto_to=["kim@yahoo.com"])
    record["meta"] = {"tenant": "dom_someone_else"}
    assert tenant_of(record) == TENANT
    assert tenant_of(_feedback(json.dumps({"tenant": TENANT}))) == TENANT
    record["feedback_report"]["supplemental_trace"] = None
    assert tenant_of(record) == "dom_someone_else"


@pytest.mark.parametrize(
    ("meta", "message_kind", "campaign"),
    [
        ({"tenant": TENANT, "kind": "warmup"}, "warmup", ""),
        ({"tenant": TENANT, "x_kind": "campaign", "campaign": "c1"}, "campaign", "c1"),
        ({"tenant": TENANT, "kind": "newsletter"}, "", ""),
        (None, "", ""),
    ],
)
def test_it_reads_the_message_kind_and_campaign_from_meta(meta, message_kind, campaign):
    [event] = map_record(_record("Delivery", meta=meta, queue=f"{TENANT}@example.org"))
    assert (event.message_kind, event.campaign) == (message_kind, campaign)


def test_it_parses_event_time_when_there_is_no_timestamp():
    record = _record("Delivery", event_time="2024-06-10T14:53:54.123456789Z")
    del record["timestamp"]
    [event] = map_record(record)
    assert event.occurred_at == pytest.approx(1718031234.123456)


def test_it_keeps_response_summaries_on_one_line_and_short():
    response = {"code": 421, "enhanced_code": None, "content": "line one\nline two " + "x" * 900}
    [event] = map_record(_record("TransientFailure", response=response))
    assert event.response.startswith("421 line one line two x")
    assert len(event.response) == 500


def test_it_tolerates_missing_optional_and_extra_unknown_fields():
    [event] = map_record({"type": "Delivery", "tls_cipher": "TLS13", "future": {"a": [1]}})
    assert event == MappedEvent(
        EventKind.DELIVERED, "", "", "", 0.0, "", "", "", "", "", record_type="Delivery"
    )


@pytest.mark.parametrize("record", [None, [], "Delivery", 42, {}, {"type": ""}, {"type": 3}])
def test_it_refuses_non_records(record):
    with pytest.raises(ValueError):
        map_record(record)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
_FIELDS = [
    "id",
    "sender",
    "recipient",
    "queue",
    "response",
    "timestamp",
    "event_time",
    "num_attempts",
    "bounce_classification",
    "feedback_report",
    "meta",
]


@given(
    st.sampled_from(["Reception", "Delivery", "Bounce", "TransientFailure", "OOB", "Feedback"]),
    st.dictionaries(st.sampled_from(_FIELDS), _json),
)
def test_it_never_raises_on_a_record_with_odd_field_values(record_type, fields):
    record = {**fields, "type": record_type}
    for event in map_record(record):
        assert isinstance(event.kind, EventKind)
        assert len(event.response) <= 500
    assert len(record_key(record)) == 64


# --- records KumoMTA writes about itself ------------------------------------------------------


def _reception_failure(content: str, **fields) -> dict:
    response = {"code": 500, "enhanced_code": None, "content": content, "command": None}
    defaults = {
        "response": response,
        "num_attempts": 0,
        "site": "",
        "peer_address": None,
        "egress_pool": None,
        "egress_source": None,
        "delivery_protocol": None,
    }
    return _record("Bounce", **{**defaults, **fields})


@pytest.mark.parametrize("text", RECEPTION_FAILURES)
def test_a_bounce_logged_when_queueing_failed_at_reception_takes_the_reception_back(text):
    # The client was told to try again (HTTP failed recipient, SMTP 421): nobody bounced it, and
    # the Reception logged just before it did not send anything. An internal marker, no bounce.
    record = _reception_failure(f"{text}: tenant dom_x has no egress pool")
    for classification in ("Uncategorized", "InvalidRecipient", "SpamBlock", "AutoReply"):
        [marker] = map_record(dict(record, bounce_classification=classification))
        assert marker.kind == EventKind.RECEPTION_UNDONE
        assert (marker.message_id, marker.tenant, marker.recipient) == (
            SPOOL_ID,
            TENANT,
            "kim.lee@example.org",
        )
        assert marker.response.startswith(f"500 {text}")


def test_the_marker_is_no_kind_customers_see():
    from reputation.models import EventKind as StoredKind

    assert EventKind.RECEPTION_UNDONE.value not in StoredKind.values
    assert {kind.value for kind in EventKind} - set(StoredKind.values) == {"reception_undone"}


def test_a_remote_reply_quoting_those_words_after_an_attempt_is_still_a_bounce():
    record = _reception_failure(f"{RECEPTION_FAILURES[0]}: ha", num_attempts=1)
    assert _kinds(record) == [EventKind.BOUNCE_HARD]
    assert _kinds(_reception_failure("Message::save failed during reception")) == [
        EventKind.BOUNCE_HARD
    ]


@pytest.mark.parametrize("record_type", ["Reception", "Delivery", "Bounce", "TransientFailure"])
def test_records_of_the_injection_generator_queue_are_ignored(record_type):
    record = _record(record_type, queue=GENERATOR_QUEUE, recipient="", meta={})
    record["delivery_protocol"] = "HttpInjectionGenerator"
    assert map_record(record) == []


# --- the platform's Message-ID -----------------------------------------------------------------


def test_each_event_carries_its_record_type():
    for record_type in ("Reception", "Delivery", "TransientFailure", "Bounce", "OOB"):
        record = _record(record_type, bounce_classification="InvalidRecipient")
        assert {e.record_type for e in map_record(record)} == {record_type}


@pytest.mark.parametrize(
    ("meta", "headers"),
    [
        ({"message_id": MESSAGE_ID}, {}),
        ({"message_id": f"<{MESSAGE_ID}>"}, {}),
        ({}, {"Message-ID": f"<{MESSAGE_ID}>"}),
        ({}, {"Message-Id": f"  <{MESSAGE_ID}>"}),
        ({}, {"message-id": [f"<{MESSAGE_ID}>", "<a-second@one>"]}),
        ({"message_id": "not an id"}, {"MESSAGE-ID": f"<{MESSAGE_ID}>"}),
    ],
)
def test_the_message_id_comes_from_meta_or_a_logged_header(meta, headers):
    record = _record("Delivery", meta={"tenant": TENANT, **meta}, headers=headers)
    assert message_id_of(record) == MESSAGE_ID
    assert map_record(record)[0].rfc_message_id == MESSAGE_ID


@pytest.mark.parametrize(
    "value",
    ["", "<>", "two words@x", "<a@b", "<a\x00b@c>", "\x00", 42, None, {"id": "a@b"}, "x" * 300],
)
def test_a_value_that_is_no_msg_id_gives_none(value):
    assert message_id_of(_record("Delivery", meta={"message_id": value})) == ""


def test_an_oob_record_tells_no_message_id():
    # Its meta and headers are those of the delivery status notification, not of our message.
    record = _record(
        "OOB", meta={"message_id": MESSAGE_ID}, headers={"Message-ID": f"<{MESSAGE_ID}>"}
    )
    assert message_id_of(record) == ""
    assert map_record(record)[0].rfc_message_id == ""


def test_a_complaint_takes_the_message_id_from_its_trace_not_from_the_report_itself():
    record = _feedback({"tenant": TENANT, "message_id": MESSAGE_ID})
    record["meta"] = {"message_id": "the-report@yahoo.com"}
    record["headers"] = {"Message-ID": "<the-report@yahoo.com>"}
    assert message_id_of(record) == MESSAGE_ID
    [event] = map_record(record)
    assert (event.rfc_message_id, event.message_id) == (MESSAGE_ID, "")


ORIGINAL = (
    "Received: from mta.example (mta.example [203.0.113.5])\n"
    "From: Anna <anna@acme-mail.com>\n"
    "To: kim.lee@yahoo.com\n"
    "Subject: Quick question\n"
    f"Message-Id:\n <{MESSAGE_ID}>\n"
    "X-KumoRef: eyJfQF8iOiJcXF8vIn0=\n"
    "\n"
    "Hi Kim,\n"
)


def test_without_a_traced_id_a_complaint_reads_the_embedded_originals_header():
    record = _feedback(None, original_message=ORIGINAL)
    assert message_id_of(record) == MESSAGE_ID
    # KumoMTA gives an original that is not UTF-8 as a list of byte values.
    raw = list(ORIGINAL.replace("Hi Kim", "H\xe9 Kim").encode("latin-1"))
    assert message_id_of(_feedback(None, original_message=raw)) == MESSAGE_ID


@pytest.mark.parametrize(
    "original",
    [
        None,
        "",
        "no headers at all",
        "Subject: no id\n\nbody",
        [300, 1, 2],
        ["M", "e"],
        "Message-ID: <" + "x" * 400 + "@y>\n\n",
        b"Message-ID: <a@b>".decode() + "\udcff",
    ],
)
def test_an_unreadable_original_tells_no_message_id(original):
    assert message_id_of(_feedback(None, original_message=original)) in ("", "a@b")


_MSG_ID_ALPHABET = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "<>")


@given(st.text(alphabet=_MSG_ID_ALPHABET, min_size=1, max_size=255))
def test_any_msg_id_the_platform_could_write_is_read_back(msg_id):
    record = _record("Delivery", meta={"message_id": f"<{msg_id}>"})
    assert message_id_of(record) == msg_id
    original = f"From: a@b.example\nMessage-ID: <{msg_id}>\n\nbody\n"
    assert message_id_of(_feedback(None, original_message=original)) == msg_id


@given(
    st.sampled_from(["Reception", "Delivery", "Bounce", "OOB", "Feedback", "Expiration"]),
    _json,
    _json,
    st.one_of(_json, st.text(max_size=3000), st.lists(st.integers(-5, 300), max_size=200)),
)
def test_reading_the_message_id_never_raises_and_yields_an_id_or_nothing(
    record_type, meta, headers, original
):
    record = {
        "type": record_type,
        "meta": meta if not isinstance(meta, dict) else {"message_id": meta, **meta},
        "headers": headers,
        "feedback_report": {"original_message": original, "supplemental_trace": meta},
    }
    found = message_id_of(record)
    assert found == "" or (len(found) <= 255 and all(c in _MSG_ID_ALPHABET for c in found))
    for event in map_record(record):
        assert event.rfc_message_id == found


# --- idempotency key ---------------------------------------------------------------------------


def test_record_key_is_stable_for_a_replayed_record():
    record = _record("Delivery")
    replay = json.loads(json.dumps(dict(reversed(list(record.items())))))
    assert record_key(record) == record_key(replay)
    assert len(record_key(record)) == 64


def test_record_key_differs_across_attempts_types_and_recipients():
    first = _record("TransientFailure", num_attempts=1)
    keys = {
        record_key(first),
        record_key(dict(first, num_attempts=2)),
        record_key(dict(first, type="Delivery")),
        record_key(dict(first, recipient=["kim.lee@example.org", "b@example.org"])),
        record_key(dict(first, timestamp=first["timestamp"] + 60)),
    }
    assert len(keys) == 5


def test_record_key_uses_event_time_without_timestamp():
    record = _record("Delivery")
    del record["timestamp"]
    later = dict(record, event_time="2024-06-10T14:53:55Z")
    assert record_key(record) != record_key(later)


def test_record_key_tells_complaints_about_different_originals_apart():
    report = _feedback(None)
    other = copy.deepcopy(report)
    other["feedback_report"]["original_rcpto_to"] = ["someone.else@yahoo.com"]
    assert record_key(report) != record_key(other)
    assert record_key(report) == record_key(copy.deepcopy(report))


def test_record_key_accepts_records_missing_fields_but_not_non_dicts():
    assert record_key({}) != record_key({"type": "Delivery"})
    with pytest.raises(ValueError):
        record_key(["Delivery"])
