"""Which rejections count as spam blocks, and how many receivers must agree before a cool-down
(docs/trust-score.md#bounce-classification, docs/tiers-and-actions.md#cool-down)."""

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from accounts.models import AuditLog
from reputation.mapping import (
    PUBLIC_BLOCKLISTS,
    SPAM_BLOCK_CLASSES,
    EventKind,
    blocklist_named,
    is_spam_block,
    map_record,
)
from reputation.models import Event, ReputationAlert
from reputation.services.events import event_record
from reputation.thresholds import spam_block_finding
from sending.models import DomainStatus
from tests.reputation.records import record, sent, spam_block, traffic

DENYLIST = {
    "code": 550,
    "enhanced_code": {"class": 5, "subject": 7, "detail": 1},
    "content": "Sender listed at our local denylist",
    "command": "MAIL FROM",
}


def _bounce(classification: str, content: str) -> dict:
    return {
        "type": "Bounce",
        "id": "d7ef132b5d7711eda6e600155d0bb3ff",
        "recipient": "kim@example.org",
        "timestamp": 1718031234,
        "bounce_classification": classification,
        "response": {"code": 554, "enhanced_code": None, "content": content},
    }


# --- Recognising a spam block (pure) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "blocklist"),
    [
        (
            "Service unavailable; Client host [203.0.113.5] blocked using zen.spamhaus.org; "
            "https://www.spamhaus.org/query/ip/203.0.113.5",
            "Spamhaus",
        ),
        ("5.7.1 Rejected: 203.0.113.5 is listed in sbl.spamhaus.org", "Spamhaus"),
        ("Blocked - see https://www.spamcop.net/bl.shtml?203.0.113.5", "SpamCop"),
        (
            "Service unavailable; Client host [203.0.113.5] blocked using "
            "b.barracudacentral.org; http://www.barracudanetworks.com/reputation/?pr=1&ip=x",
            "Barracuda",
        ),
        ("Message rejected: a URL in it is listed in multi.surbl.org", "SURBL"),
        (
            "Unfortunately, messages from [203.0.113.5] weren't sent. Please contact your "
            "Internet service provider since part of their network is on our block list "
            "(S3150).",
            "Microsoft block list",
        ),
        (
            "5.7.606 Access denied, banned sending IP [203.0.113.5]. To request removal from "
            "this list please visit https://sender.office.com/ and follow the directions.",
            "Microsoft banned sending IP",
        ),
    ],
)
def test_it_recognises_public_blocklists_by_their_documented_replies(content, blocklist):
    assert blocklist_named({"content": content}) == blocklist
    [event] = map_record(_bounce("Uncategorized", content))
    assert event.kind == EventKind.SPAM_BLOCK


def test_it_recognises_a_spamhaus_format_reply_filed_under_a_generic_class():
    content = "Service unavailable; Client host [203.0.113.5] blocked using zen.spamhaus.org"
    [event] = map_record(_bounce("AuthenticationFailed", content))
    assert event.kind == EventKind.SPAM_BLOCK


@pytest.mark.parametrize(
    "content",
    [
        "Sender listed at our local denylist",
        "Your IP is on our BLACKLIST",
        "Rejected: you are on our block list",
        "550 5.7.1 blocked using our own dnsbl",
        "We do not like spamhaus",  # names the list, not in its reply format
    ],
)
def test_a_receivers_own_wording_is_an_ordinary_bounce(content):
    [event] = map_record(_bounce("Uncategorized", content))
    assert event.kind == EventKind.BOUNCE_HARD


@pytest.mark.parametrize("classification", sorted(SPAM_BLOCK_CLASSES))
def test_kumomtas_spam_classes_are_spam_blocks_whatever_the_text(classification):
    [event] = map_record(_bounce(classification, "no"))
    assert event.kind == EventKind.SPAM_BLOCK


_NEEDLES = tuple(blocklist.needle for blocklist in PUBLIC_BLOCKLISTS)


@given(
    content=st.text(max_size=300),
    classification=st.text(max_size=20) | st.sampled_from(["Uncategorized", "PolicyRelated"]),
    record_type=st.sampled_from(["Bounce", "Expiration", "OOB"]),
)
def test_text_without_a_known_list_or_spam_class_is_never_a_spam_block(
    content, classification, record_type
):
    assume(classification not in SPAM_BLOCK_CLASSES)
    assume(not any(needle in content.lower() for needle in _NEEDLES))
    assert not is_spam_block(classification, {"content": content})
    record = dict(_bounce(classification, content), type=record_type)
    assert all(e.kind != EventKind.SPAM_BLOCK for e in map_record(record))


# --- How many receivers must agree (pure) ------------------------------------------------------


def test_one_receiving_domain_is_a_warning_and_three_are_a_cool_down():
    one = spam_block_finding(["a@gmail.com", "b@gmail.com"], example="x", min_domains=3)
    assert one is not None and (one.code, one.level) == ("spam_block", "warning")
    three = spam_block_finding(
        ["a@gmail.com", "b@outlook.com", "c@Example.org"], example="x", min_domains=3
    )
    assert three is not None and three.level == "critical"
    assert three.numbers["domains"] == ["example.org", "gmail.com", "outlook.com"]
    assert spam_block_finding([], example="", min_domains=3) is None
    unknown = spam_block_finding(["", ""], example="", min_domains=1)
    assert unknown is not None and unknown.level == "warning"


# --- The pipeline ------------------------------------------------------------------------------


def _premium(post, sender):
    post(traffic(sender, 100))
    for i in range(40):
        event_record(
            domain=sender,
            kind="replied",
            source_key=f"t:replied:{i}",
            recipient=f"p{i}@example.org",
            message_id=f"m{i}",
            rescore=False,
        )
    event_record(domain=sender, kind="opened", source_key="t:o", message_id="x")
    sender.refresh_from_db()
    assert (sender.status, sender.tier) == (DomainStatus.VERIFIED, "premium")


@pytest.mark.django_db
def test_a_receivers_denylist_text_does_not_cool_down_a_premium_domain(post, sender):
    _premium(post, sender)
    post(
        [
            sent(sender, "kim@corp.example"),
            record("Bounce", sender, "kim@corp.example", response=DENYLIST),
        ]
    )
    sender.refresh_from_db()
    assert (sender.status, sender.tier) == (DomainStatus.VERIFIED, "premium")
    assert not Event.objects.filter(kind="spam_block").exists()
    assert not AuditLog.objects.filter(action="reputation.cooldown").exists()


@pytest.mark.django_db
def test_a_spam_block_from_a_single_receiving_domain_only_warns(post, sender):
    _premium(post, sender)
    post([spam_block(sender, "kim@corp.example"), spam_block(sender, "lee@corp.example")])
    sender.refresh_from_db()
    assert (sender.status, sender.tier) == (DomainStatus.VERIFIED, "premium")
    alert = ReputationAlert.objects.get(domain=sender, code="spam_block", resolved_at=None)
    assert alert.level == "warning"
    assert alert.numbers["domains"] == ["corp.example"]
    log = AuditLog.objects.get(action="reputation.spam_block")
    assert "corp.example" in log.reason and "zen.spamhaus.org" in log.reason
    assert not AuditLog.objects.filter(action="reputation.cooldown").exists()
    post([spam_block(sender, "kim@corp.example", attempt=2)])  # same episode: said once
    assert AuditLog.objects.filter(action="reputation.spam_block").count() == 1


@pytest.mark.django_db
def test_the_same_block_from_three_receiving_domains_cools_the_domain_down(post, sender):
    _premium(post, sender)
    post([spam_block(sender, "kim@corp.example")])
    sender.refresh_from_db()
    assert sender.status == DomainStatus.VERIFIED
    # Two more receivers agree in a later run: the window counts all three.
    post([spam_block(sender, "a@gmail.com"), spam_block(sender, "b@outlook.com")])
    sender.refresh_from_db()
    assert (sender.status, sender.tier) == (DomainStatus.COOLDOWN, "rehab")
    reason = AuditLog.objects.get(action="reputation.cooldown").reason
    assert "3 receiving domains" in reason and "zen.spamhaus.org" in reason
