"""The rehabilitation meter through the real pipeline: MTA records in, page and API out."""

import re

import pytest

from reputation.core.scores import scores_recompute
from reputation.selectors import domain_reputation
from reputation.services.events import event_record
from tests.conftest import token_client
from tests.reputation.records import delivered, hard_bounce, sent, traffic

pytestmark = pytest.mark.django_db


def warmup(domain, n: int, *, prefix: str = "peer", bounces: int = 0) -> tuple[list[dict], list]:
    """n warm-up messages to peers (the first `bounces` hard-bounce); records and message ids."""
    meta = {"tenant": domain.public_id, "kind": "warmup"}
    records, ids = [], []
    for i in range(n):
        rcpt = f"{prefix}{i}@peers.example"
        first = sent(domain, rcpt, meta=meta)
        ids.append((first["id"], rcpt))
        outcome = hard_bounce if i < bounces else delivered
        records += [first, outcome(domain, rcpt, meta=meta, message_id=first["id"])]
    return records, ids


def engage(domain, ids: list, *, replies: int, opens: int) -> None:
    """Replies and opens on the given messages, as the warming network's peers would give."""
    for kind, count in (("replied", replies), ("opened", opens)):
        for message_id, rcpt in ids[:count]:
            event_record(
                domain=domain,
                kind=kind,
                source_key=f"peer:{message_id}:{kind}",
                recipient=rcpt,
                message_id=message_id,
                rescore=False,
            )
    scores_recompute(domain_ids=[domain.pk])


def page_of(client, owner, domain) -> str:
    url = f"/w/{owner.workspace.public_id}/domains/{domain.public_id}/reputation/"
    return client.get(url).content.decode()


def test_it_shows_a_new_domain_as_new_in_the_page_and_the_api(post, sender, owner, owner_client):
    rehab = domain_reputation(sender)["rehab"]
    assert (rehab["state"], rehab["done"], rehab["remaining"], rehab["percent"]) == (
        "new",
        0,
        20,
        0,
    )
    post(traffic(sender, 6))
    sender.refresh_from_db()
    assert sender.tier == "rehab" and sender.score_provisional  # the MTA pool stays rehab
    body = token_client(owner).get(f"/api/v1/domains/{sender.public_id}/reputation/").json()
    rehab = body["rehab"]
    assert (rehab["state"], rehab["done"], rehab["remaining"], rehab["percent"]) == (
        "new",
        6,
        14,
        30,
    )
    assert rehab["summary"] == "14 more messages to get a first score."
    assert rehab["score_unlock"] is None and rehab["since"] is None
    assert "rehab" not in f"{rehab['summary']} {rehab['explanation']}".lower()

    html = page_of(owner_client, owner, sender)
    assert 'data-state="new"' in html
    assert "14 more messages to get a first score." in html
    assert "6 done, 14 to go (30 %)" in html
    assert "Your way back" not in html and "clean internal warming" not in html
    assert re.search(r'data-testid="tier"[^>]*>new<', html)  # not "rehab" before a first score


def test_a_demoted_domain_counts_clean_warmup_down_to_the_target(post, sender, owner, owner_client):
    post(traffic(sender, 100, bounces=5))
    sender.refresh_from_db()
    before = domain_reputation(sender)["rehab"]
    assert (before["state"], before["done"], before["remaining"], before["percent"]) == (
        "rehab",
        0,
        256,
        0,
    )
    assert before["since"] == sender.rehab_started_at
    assert 'style="width: 0%"' in page_of(owner_client, owner, sender)

    records, ids = warmup(sender, 40)
    post(records)
    engage(sender, ids, replies=10, opens=24)  # the network's typical 25 % and 60 %
    sender.refresh_from_db()
    after = domain_reputation(sender)["rehab"]
    assert (after["done"], after["remaining"], after["percent"]) == (40, 216, 15)
    assert after["done"] + after["remaining"] == before["remaining"]
    assert "That is" not in after["explanation"]
    html = page_of(owner_client, owner, sender)
    assert "40 clean warm-up messages done since rehabilitation began on" in html
    assert "216 more needed now." in html
    assert 'style="width: 15%"' in html and "40 done, 216 to go (15 %)" in html


def test_it_explains_why_warmup_without_engagement_raises_the_number(post, sender):
    post(traffic(sender, 100, bounces=5))
    records, _ = warmup(sender, 40)
    post(records)
    sender.refresh_from_db()
    rehab = domain_reputation(sender)["rehab"]
    assert (rehab["done"], rehab["remaining"], rehab["percent"]) == (40, 288, 12)
    assert (
        "That is 72 more than the 256 needed when rehabilitation began less the 40 done, because "
        "the 40 messages that joined the window brought 0 replies and 0 opens where the count "
        "assumes 10 and 24."
    ) in rehab["explanation"]


def test_warmup_that_bounced_is_not_counted_as_done(post, sender):
    post(traffic(sender, 100, bounces=5))
    records, _ = warmup(sender, 10, bounces=3)
    post(records)
    sender.refresh_from_db()
    rehab = domain_reputation(sender)["rehab"]
    assert rehab["done"] == 7
    assert "At least 3 other messages joined the window" in rehab["explanation"]


def test_campaign_mail_moves_the_number_but_is_not_counted_as_done(post, sender):
    post(traffic(sender, 100, bounces=5))
    post(traffic(sender, 50, prefix="c"))
    sender.refresh_from_db()
    rehab = domain_reputation(sender)["rehab"]
    assert rehab["done"] == 0 and rehab["percent"] == 0
    assert "At least 50 other messages joined the window since then" in rehab["explanation"]


def test_rehabilitation_begins_at_the_first_real_score_not_while_new(post, sender):
    records, _ = warmup(sender, 10, prefix="early")
    post(records)
    sender.refresh_from_db()
    assert sender.score_provisional and domain_reputation(sender)["rehab"]["state"] == "new"
    waiting_since = sender.rehab_started_at
    post(traffic(sender, 100, bounces=5))
    sender.refresh_from_db()
    assert sender.rehab_started_at > waiting_since
    rehab = domain_reputation(sender)["rehab"]
    assert (rehab["state"], rehab["done"]) == ("rehab", 0)  # the ten early ones came before
