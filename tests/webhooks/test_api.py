"""/api/v1/webhooks/: CRUD, delivery log, test event; token-bound, other workspaces are 404."""

import pytest
from django.utils import timezone

from accounts.models import AuditLog
from tests.conftest import token_client
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services.deliveries import delivery_attempt, webhook_emit
from webhooks.services.endpoints import endpoint_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(owner):
    return token_client(owner)


def test_it_creates_an_endpoint_and_shows_the_secret_once(api, owner, receiver):
    response = api.post(
        "/api/v1/webhooks/",
        {"url": receiver.url, "events": ["message.replied", "lead.unsubscribed"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert body["events"] == ["message.replied", "lead.unsubscribed"]
    assert body["workspace"] == owner.workspace.public_id
    endpoint = WebhookEndpoint.objects.get(public_id=body["id"])
    assert body["secret"] not in endpoint.secret_encrypted  # encrypted at rest
    shown = api.get(f"/api/v1/webhooks/{body['id']}/").json()
    assert "secret" not in shown and shown["url"] == receiver.url
    assert AuditLog.objects.filter(action="webhook.create", workspace=owner.workspace).exists()


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"url": "http://hooks.example.com/x"}, "url", "https://"),
        ({"url": "https://127.0.0.1/x"}, "url", "internal address"),
        ({"url": "https://user:pw@hooks.example.com/x"}, "url", "passwords"),
        ({"url": "not a url"}, "url", "https://"),
        ({"url": "https://hooks.example.com/x", "events": ["message.exploded"]}, "events",
         "Unknown event type message.exploded"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_clearly_and_writes_nothing(api, data, field, words):
    response = api.post("/api/v1/webhooks/", data, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert words in " ".join(error["fields"][field])
    assert WebhookEndpoint.objects.count() == 0
    assert AuditLog.objects.filter(action__startswith="webhook.").count() == 0


def test_it_updates_disables_and_enables(api, owner, endpoint):
    url = f"/api/v1/webhooks/{endpoint.public_id}/"
    response = api.patch(url, {"events": ["message.opened"], "description": "CRM"}, format="json")
    assert response.status_code == 200
    assert response.json()["events"] == ["message.opened"]
    bad = api.patch(url, {"url": "ftp://x.example.com", "events": []}, format="json")
    assert bad.status_code == 400
    endpoint.refresh_from_db()
    assert endpoint.events == ["message.opened"] and endpoint.url.startswith("http://127.0.0.1")
    assert api.patch(url, {"active": False}, format="json").json()["active"] is False
    again = api.patch(url, {"active": True}, format="json").json()
    assert again["active"] is True and again["disabled_reason"] == ""


def test_it_lists_deliveries_with_their_attempts(api, owner, endpoint, receiver):
    receiver.script = [500]
    [delivery] = webhook_emit(
        workspace_id=owner.workspace.pk,
        event_type="message.sent",
        data={"recipient": "a@example.org"},
        occurred_at=timezone.now(),
        event_id="evt_api",
    )
    delivery_attempt(delivery_id=delivery.pk)
    response = api.get(f"/api/v1/webhooks/{endpoint.public_id}/deliveries/")
    assert response.status_code == 200
    [row] = response.json()["results"]
    assert row["event_id"] == "evt_api" and row["state"] == "failed"
    assert row["last_status_code"] == 500
    assert [a["status_code"] for a in row["attempt_log"]] == [500]
    filtered = api.get(f"/api/v1/webhooks/{endpoint.public_id}/deliveries/?state=succeeded")
    assert filtered.json()["results"] == []
    assert api.get(f"/api/v1/webhooks/{endpoint.public_id}/deliveries/?state=x").status_code == 400


def test_the_test_event_is_sent_at_once(
    api, endpoint, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/webhooks/{endpoint.public_id}/test/")
    assert response.status_code == 202
    assert len(receiver.requests) == 1
    assert WebhookDelivery.objects.get().state == "succeeded"


def test_members_read_but_only_admins_change(teammate, endpoint):
    api = token_client(teammate)
    assert api.get("/api/v1/webhooks/").json()["count"] == 1
    url = f"/api/v1/webhooks/{endpoint.public_id}/"
    assert api.patch(url, {"description": "x"}, format="json").status_code == 403
    assert api.delete(url).status_code == 403
    assert api.post(url + "test/").status_code == 403
    created = api.post("/api/v1/webhooks/", {"url": "https://hooks.example.com/"}, format="json")
    assert created.status_code == 403
    assert WebhookEndpoint.objects.count() == 1 and WebhookDelivery.objects.count() == 0


def test_another_workspaces_endpoint_is_404(stranger, endpoint, owner):
    api = token_client(stranger)
    theirs, _ = endpoint_create(
        workspace=stranger.workspace, actor=stranger.user, url="https://hooks.globex.example/"
    )
    listed = api.get("/api/v1/webhooks/").json()
    assert [row["id"] for row in listed["results"]] == [theirs.public_id]
    url = f"/api/v1/webhooks/{endpoint.public_id}/"
    assert api.get(url).status_code == 404
    assert api.get(url + "deliveries/").status_code == 404
    assert api.patch(url, {"description": "mine"}, format="json").status_code == 404
    assert api.post(url + "test/").status_code == 404
    assert api.delete(url).status_code == 404
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()
    # A token cannot create an endpoint in another workspace.
    response = api.post(
        "/api/v1/webhooks/",
        {"url": "https://hooks.globex.example/2", "workspace": owner.workspace.public_id},
        format="json",
    )
    assert response.status_code == 404
    assert (
        not WebhookEndpoint.objects.filter(workspace=owner.workspace)
        .exclude(pk=endpoint.pk)
        .exists()
    )


def test_delete_removes_the_endpoint(api, endpoint):
    assert api.delete(f"/api/v1/webhooks/{endpoint.public_id}/").status_code == 204
    assert not WebhookEndpoint.objects.exists()
