"""Scores reach the browser's socket and the API; tenants never see each other's events."""

import threading

import orjson
import pytest
from channels.db import database_sync_to_async
from django.db import connection
from rest_framework.test import APIClient

from reputation.services.events import event_record
from tests.accounts.test_websocket import session_cookie, socket
from tests.conftest import TOKEN, token_client
from tests.reputation.records import complaint, traffic


@pytest.mark.django_db(transaction=True)
async def test_an_intake_batch_pushes_the_new_score_through_channels_redis(sender, owner, settings):
    settings.KUMO_WEBHOOK_TOKEN = TOKEN
    cookie = await database_sync_to_async(session_cookie)(owner)
    live = socket(cookie)
    assert (await live.connect())[0]
    await live.receive_json_from(timeout=5)  # hello

    def deliver() -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
            body = orjson.dumps(traffic(sender, 30, bounces=1))
            response = client.post("/hooks/kumomta/", body, content_type="application/json")
            assert response.status_code == 200
        finally:
            connection.close()

    thread = threading.Thread(target=deliver)
    thread.start()
    await database_sync_to_async(thread.join)()
    events = []
    while True:
        message = await live.receive_json_from(timeout=5)
        events.append(message)
        if message["event"] == "score":
            break
    score = events[-1]["payload"]
    assert score["domain"] == sender.public_id
    assert score["score"] == pytest.approx(16.67)  # 50 - 10 * 3.33 % bounces, no engagement
    assert score["tier"] == "rehab"
    await live.disconnect()


pytestmark = pytest.mark.django_db


def test_the_reputation_endpoint_explains_the_score(post, sender, owner):
    post(traffic(sender, 100, bounces=5))
    body = token_client(owner).get(f"/api/v1/domains/{sender.public_id}/reputation/").json()
    assert (body["score"], body["tier"], body["provisional"], body["verified"]) == (
        0.0,
        "rehab",
        False,
        True,
    )
    assert body["scoring_version"] >= 1
    assert body["metrics"]["bounce_percent"] == 5.0
    # docs/rehabilitation.md#bounce-dilution: N=100, B=5
    assert body["rehab"]["bounce_dilution"] == 400
    assert body["rehab"]["state"] == "rehab"
    assert body["rehab"]["reachable"] is True
    assert body["rehab"]["score_unlock"] == body["rehab"]["remaining"] == 256
    assert (body["rehab"]["done"], body["rehab"]["percent"]) == (0, 0)
    assert body["history"][-1]["tier"] == "rehab"
    assert {a["action"] for a in body["recent_actions"]} >= {"reputation.bounce_warning"}


def test_events_are_listed_filtered_and_scoped(post, sender, owner, stranger):
    post([*traffic(sender, 5, bounces=2), complaint(sender, "p4@example.org")])
    event_record(domain=sender, kind="replied", source_key="r1", recipient="p3@example.org")
    client = token_client(owner)
    everything = client.get("/api/v1/events/").json()
    assert everything["count"] == 12
    bounces = client.get("/api/v1/events/", {"kind": "bounce_hard"}).json()["results"]
    assert {e["recipient"] for e in bounces} == {"p0@example.org", "p1@example.org"}
    mine = client.get("/api/v1/events/", {"recipient": "P4@example.org"}).json()["results"]
    assert {e["kind"] for e in mine} == {"sent", "delivered", "complaint"}
    assert client.get("/api/v1/events/", {"kind": "nonsense"}).status_code == 400

    theirs = token_client(stranger)
    assert theirs.get("/api/v1/events/").json()["count"] == 0
    assert theirs.get("/api/v1/events/", {"domain": sender.public_id}).json()["count"] == 0
    assert theirs.get(f"/api/v1/domains/{sender.public_id}/reputation/").status_code == 404


def test_the_domain_page_shows_gauge_history_rehab_and_actions(post, sender, owner_client, owner):
    post(traffic(sender, 100, bounces=6))
    page = owner_client.get(f"/w/{owner.workspace.public_id}/domains/{sender.public_id}/")
    body = page.content.decode()
    for expected in (
        'data-testid="trust-score"',
        "polyline",
        "Your way back",
        'data-state="rehab"',
        "0 clean warm-up messages done since rehabilitation began on",
        "6 hard bounces (6 % of sent, costing 60 points)",
        "alex@" + sender.name + " was paused for bouncing too much",
        'hx-trigger="workspace:score from:document',
    ):
        assert expected in body
    card = owner_client.get(
        f"/w/{owner.workspace.public_id}/domains/{sender.public_id}/reputation/"
    )
    assert card.content.decode().lstrip().startswith('<section class="card reputation"')
    dashboard = owner_client.get(f"/w/{owner.workspace.public_id}/").content.decode()
    assert 'data-testid="dashboard-scores"' in dashboard
    assert "rehab" in dashboard


def test_list_pages_and_endpoints_do_not_grow_queries_with_rows(
    post, sender, owner, owner_client, django_assert_max_num_queries
):
    from sending.services.mailboxes import mailbox_create

    client = token_client(owner)
    ws = owner.workspace.public_id
    urls = [
        (owner_client, f"/w/{ws}/mailboxes/"),
        (owner_client, f"/w/{ws}/"),
        (client, "/api/v1/events/"),
        (client, "/api/v1/mailboxes/"),
    ]
    post(traffic(sender, 3))
    baseline = {}
    for who, url in urls:
        who.get(url)
        with django_assert_max_num_queries(40) as counted:
            who.get(url)
        baseline[url] = len(counted.captured_queries)
    for n in range(6):
        mailbox_create(
            domain=sender,
            actor=owner.user,
            data={"connection": "platform", "local_part": f"extra{n}"},
        )
    post(traffic(sender, 20, prefix="more"))
    for who, url in urls:
        with django_assert_max_num_queries(baseline[url]):
            who.get(url)
