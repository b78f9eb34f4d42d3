"""The KumoMTA log simulator: realistic, deterministic records per persona (no database)."""

import json
import time
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

from reputation.mapping import EventKind, map_record, record_key
from reputation.simulator import PERSONAS, simulate_records

ROOT = Path(__file__).resolve().parents[2]
TENANT = "dom_7f3k2q9x"
DOMAIN = "acme-mail.com"
START = 1_750_000_000.0
FINAL_TYPES = {"Delivery", "Bounce", "Expiration"}


@cache
def _run(persona: str, messages: int = 5000, seed: int = 7) -> tuple[dict, ...]:
    records = simulate_records(
        tenant=TENANT, domain=DOMAIN, persona=persona, messages=messages, seed=seed, start=START
    )
    return tuple(records)


def _events(records) -> list:
    return [event for record in records for event in map_record(record)]


def _share(records, kind: EventKind) -> float:
    events = _events(records)
    sent = sum(1 for event in events if event.kind == EventKind.SENT)
    return sum(1 for event in events if event.kind == kind) / sent


def test_it_is_deterministic_for_a_seed_and_start():
    first = simulate_records(
        tenant=TENANT, domain=DOMAIN, persona="reckless", messages=300, seed=11, start=START
    )
    again = simulate_records(
        tenant=TENANT, domain=DOMAIN, persona="reckless", messages=300, seed=11, start=START
    )
    other = simulate_records(
        tenant=TENANT, domain=DOMAIN, persona="reckless", messages=300, seed=12, start=START
    )
    assert first == again
    assert first != other


def test_it_refuses_unknown_personas_and_negative_counts():
    with pytest.raises(ValueError):
        simulate_records(tenant=TENANT, domain=DOMAIN, persona="saint", messages=10)
    with pytest.raises(ValueError):
        simulate_records(tenant=TENANT, domain=DOMAIN, persona="good", messages=-1)
    assert simulate_records(tenant=TENANT, domain=DOMAIN, persona="good", messages=0) == []


@pytest.mark.parametrize("persona", sorted(PERSONAS))
def test_it_produces_json_serialisable_records(persona):
    records = list(_run(persona, 500))
    assert json.loads(json.dumps(records)) == records


@pytest.mark.parametrize("persona", sorted(PERSONAS))
def test_every_record_maps_to_the_expected_kind(persona):
    expected = {
        ("Reception", "Uncategorized"): EventKind.SENT,
        ("Delivery", "Uncategorized"): EventKind.DELIVERED,
        ("Bounce", "InvalidRecipient"): EventKind.BOUNCE_HARD,
        ("Bounce", "SpamBlock"): EventKind.SPAM_BLOCK,
        ("TransientFailure", "TransientFailure"): EventKind.BOUNCE_SOFT,
        ("TransientFailure", "QuotaIssues"): EventKind.BOUNCE_SOFT,
        ("Expiration", "MessageExpired"): EventKind.BOUNCE_HARD,
        ("Feedback", "Uncategorized"): EventKind.COMPLAINT,
    }
    for record in _run(persona):
        events = map_record(record)
        assert [event.kind for event in events] == [
            expected[record["type"], record["bounce_classification"]]
        ]
        [event] = events
        assert event.tenant == TENANT
        assert event.recipient.endswith(("@gmail.com", "@outlook.com", "@yahoo.com", ".org"))
        assert event.mailbox == f"sender@{DOMAIN}"


def test_records_have_the_shape_a_kumomta_node_logs():
    records = _run("average", 500)
    reception = next(record for record in records if record["type"] == "Reception")
    delivery = next(record for record in records if record["type"] == "Delivery")
    assert len(reception["id"]) == 32 and int(reception["id"], 16) >= 0
    assert reception["queue"] == f"{TENANT}@{reception['recipient'].split('@')[1]}"
    assert reception["meta"] == {
        "tenant": TENANT,
        "kind": "campaign",
        "message_id": reception["meta"]["message_id"],
    }
    assert reception["meta"]["message_id"].endswith(f"@{DOMAIN}")
    # One Message-ID per message, in every record of it.
    by_spool_id = {(r["id"], r["meta"]["message_id"]) for r in records if r["type"] != "Feedback"}
    assert len(by_spool_id) == len({spool_id for spool_id, _ in by_spool_id})
    assert len(by_spool_id) == len({message_id for _, message_id in by_spool_id})
    assert reception["reception_protocol"] == "ESMTP"
    assert reception["response"]["code"] == 250
    assert reception["egress_pool"] is None
    assert delivery["response"]["code"] == 250
    assert delivery["response"]["enhanced_code"] == {"class": 2, "subject": 0, "detail": 0}
    assert delivery["egress_pool"] and delivery["egress_source"] and delivery["site"]
    assert delivery["peer_address"]["addr"]
    for record in records:
        assert isinstance(record["timestamp"], int)
        assert record["event_time"].endswith("Z")
        assert record["nodeid"] == reception["nodeid"]


@pytest.mark.parametrize("persona", sorted(PERSONAS))
def test_every_reception_has_exactly_one_final_outcome_after_it(persona):
    by_message = defaultdict(list)
    for record in _run(persona):
        if record["type"] != "Feedback":
            by_message[record["id"]].append(record)
    assert len(by_message) == 5000
    for records in by_message.values():
        assert records[0]["type"] == "Reception"
        assert sum(1 for record in records if record["type"] == "Reception") == 1
        finals = [record for record in records if record["type"] in FINAL_TYPES]
        assert len(finals) == 1
        assert records[-1] is finals[0]
        attempts = [record["num_attempts"] for record in records[1:]]
        assert attempts == sorted(attempts)


@pytest.mark.parametrize("persona", sorted(PERSONAS))
def test_timestamps_increase_over_about_an_hour_from_start(persona):
    records = _run(persona)
    times = [record["event_time"] for record in records]
    assert times == sorted(times)
    assert START <= records[0]["timestamp"] < START + 60
    assert START + 40 * 60 < records[-1]["timestamp"] < START + 70 * 60


def test_the_default_start_is_an_hour_ago():
    records = simulate_records(tenant=TENANT, domain=DOMAIN, persona="good", messages=50, seed=1)
    now = time.time()
    assert now - 3700 < records[0]["timestamp"] < now - 3300
    assert records[-1]["timestamp"] <= now + 60


def test_the_record_keys_are_unique():
    records = _run("reckless")
    assert len({record_key(record) for record in records}) == len(records)


def test_it_sends_from_the_given_mailboxes():
    mailboxes = [f"anna@{DOMAIN}", f"ben@{DOMAIN}"]
    records = simulate_records(
        tenant=TENANT,
        domain=DOMAIN,
        persona="average",
        messages=200,
        seed=3,
        start=START,
        mailboxes=mailboxes,
    )
    senders = {record["sender"] for record in records if record["type"] == "Reception"}
    assert senders == set(mailboxes)


def test_a_good_domain_barely_bounces_and_never_gets_complaints():
    records = _run("good")
    assert _share(records, EventKind.BOUNCE_HARD) < 0.01
    assert _share(records, EventKind.COMPLAINT) == 0
    assert _share(records, EventKind.SPAM_BLOCK) == 0
    assert 0.002 < _share(records, EventKind.BOUNCE_SOFT) < 0.03


def test_an_average_domain_bounces_about_one_percent():
    records = _run("average")
    assert 0.004 < _share(records, EventKind.BOUNCE_HARD) < 0.02
    assert _share(records, EventKind.COMPLAINT) < 0.002
    assert _share(records, EventKind.SPAM_BLOCK) == 0


def test_a_reckless_domain_bounces_hard_and_hammers_full_mailboxes():
    records = _run("reckless")
    assert 0.04 < _share(records, EventKind.BOUNCE_HARD) < 0.10
    assert _share(records, EventKind.COMPLAINT) < 0.005
    # Full, abandoned mailboxes: five soft bounces in a row to one address, then expiry. This
    # feeds the service's "5 consecutive soft bounces count as one hard bounce" rule.
    kinds_by_message = defaultdict(list)
    for event in _events(records):
        kinds_by_message[event.message_id, event.recipient].append(event.kind)
    stuck = [
        kinds
        for kinds in kinds_by_message.values()
        if kinds == [EventKind.SENT] + [EventKind.BOUNCE_SOFT] * 5 + [EventKind.BOUNCE_HARD]
    ]
    assert stuck


def test_a_spammer_gets_complaints_and_blocklisted():
    records = _run("spammer")
    assert 0.02 < _share(records, EventKind.BOUNCE_HARD) < 0.07
    assert 0.002 < _share(records, EventKind.COMPLAINT) < 0.01
    assert 0 < _share(records, EventKind.SPAM_BLOCK) < 0.02
    assert any("spamhaus" in record["response"]["content"] for record in records)


def test_complaints_carry_the_tenant_and_point_back_to_a_delivered_message():
    records = _run("spammer")
    delivered = {
        (record["id"], record["recipient"]) for record in records if record["type"] == "Delivery"
    }
    message_ids = {r["id"]: r["meta"]["message_id"] for r in records if r["type"] == "Delivery"}
    feedback = [record for record in records if record["type"] == "Feedback"]
    assert feedback
    for record in feedback:
        report = record["feedback_report"]
        trace = report["supplemental_trace"]
        assert trace["tenant"] == TENANT
        assert (trace["id"], trace["recipient"]) in delivered
        assert report["feedback_type"] == "abuse"
        assert report["original_rcpto_to"] == [trace["recipient"]]
        assert report["original_mail_from"] == f"sender@{DOMAIN}"
        # The report's own envelope is the FBL's, never the complainer's.
        assert record["recipient"] != trace["recipient"]
        assert record["sender"] != f"sender@{DOMAIN}"
        [complaint] = map_record(record)
        assert (complaint.recipient, complaint.message_id) == (trace["recipient"], trace["id"])
        # The Message-ID the trace carries is the one the original's header and records give.
        assert complaint.rfc_message_id == trace["message_id"] == message_ids[trace["id"]]
        assert f"Message-ID: <{trace['message_id']}>" in report["original_message"]
