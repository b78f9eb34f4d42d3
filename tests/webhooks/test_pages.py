"""The Webhooks pages: list, add (errors beside fields), secret, test event, log, re-enable."""

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.conftest import logged_in
from webhooks.models import DeliveryState, WebhookDelivery, WebhookEndpoint
from webhooks.services.deliveries import delivery_attempt, webhook_emit
from webhooks.services.endpoints import endpoint_disable

pytestmark = pytest.mark.django_db


def url(name, membership, *args):
    return reverse(name, args=[membership.workspace.public_id, *args])


def test_an_owner_adds_an_endpoint_and_sees_its_secret(owner, owner_client, receiver):
    response = owner_client.post(
        url("webhook_create", owner),
        {"url": receiver.url, "events": ["message.replied"], "description": "CRM"},
    )
    endpoint = WebhookEndpoint.objects.get()
    assert response.status_code == 302
    page = owner_client.get(response["Location"])
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    html = page.content.decode()
    assert 'data-testid="secret"' in html and "whsec_" in html
    assert endpoint.events == ["message.replied"]
    listing = owner_client.get(url("webhooks", owner)).content.decode()
    assert receiver.url in listing and "1 type" in listing


def test_errors_are_shown_beside_the_fields_and_nothing_is_written(owner, owner_client):
    response = owner_client.post(
        url("webhook_create", owner), {"url": "http://hooks.example.com/", "events": ["nope"]}
    )
    assert response.status_code == 400
    form = response.context["form"]
    assert "events" in form.errors  # not one of the choices
    response = owner_client.post(url("webhook_create", owner), {"url": "http://hooks.example.com/"})
    assert response.status_code == 400
    assert "https://" in response.context["form"].errors["url"][0]
    assert WebhookEndpoint.objects.count() == 0


def test_the_test_button_and_the_delivery_log(
    owner, owner_client, endpoint, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(url("webhook_test", owner, endpoint.public_id))
    assert response.status_code == 302 and len(receiver.requests) == 1
    receiver.script = [503]
    [failed] = webhook_emit(
        workspace_id=owner.workspace.pk, event_type="message.bounced", data={},
        occurred_at=timezone.now(), event_id="evt_bounce",
    )  # fmt: skip
    delivery_attempt(delivery_id=failed.pk)
    html = owner_client.get(url("webhook", owner, endpoint.public_id)).content.decode()
    assert "webhook.test" in html and "message.bounced" in html
    assert "HTTP 503" in html and "HTTP 200" in html
    only_failed = owner_client.get(url("webhook", owner, endpoint.public_id) + "?state=failed")
    assert [d.event_id for d in only_failed.context["page"].object_list] == ["evt_bounce"]


def test_a_disabled_endpoint_says_why_and_can_be_turned_back_on(owner, owner_client, endpoint):
    endpoint_disable(endpoint=endpoint, actor=None, reason="5 deliveries in a row failed.")
    html = owner_client.get(url("webhook", owner, endpoint.public_id)).content.decode()
    assert "5 deliveries in a row failed." in html and "Turn back on" in html
    owner_client.post(url("webhook_enable", owner, endpoint.public_id))
    endpoint.refresh_from_db()
    assert endpoint.active and endpoint.disabled_reason == ""


def test_members_see_but_cannot_change(teammate, endpoint, owner):
    client = logged_in(teammate)
    page = client.get(url("webhook", owner, endpoint.public_id))
    assert page.status_code == 200 and "whsec_" not in page.content.decode()
    shown = client.get(url("webhook", owner, endpoint.public_id) + "?secret=show")
    assert "whsec_" not in shown.content.decode()
    for name in ("webhook_test", "webhook_delete", "webhook_disable", "webhook_secret"):
        assert client.post(url(name, owner, endpoint.public_id)).status_code == 403
    assert (
        client.post(url("webhook_create", owner), {"url": "https://x.example"}).status_code == 403
    )
    assert WebhookEndpoint.objects.filter(active=True).count() == 1
    assert WebhookDelivery.objects.count() == 0


def test_strangers_get_404(stranger_client, owner, endpoint):
    assert stranger_client.get(url("webhooks", owner)).status_code == 404
    assert stranger_client.get(url("webhook", owner, endpoint.public_id)).status_code == 404
    assert stranger_client.post(url("webhook_delete", owner, endpoint.public_id)).status_code == 404
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_delete(owner, owner_client, endpoint):
    response = owner_client.post(url("webhook_delete", owner, endpoint.public_id))
    assert response.status_code == 302 and not WebhookEndpoint.objects.exists()


def test_the_log_has_no_n_plus_one(
    owner, owner_client, endpoint, receiver, django_assert_max_num_queries
):
    receiver.default = 500
    for n in range(10):
        [d] = webhook_emit(
            workspace_id=owner.workspace.pk, event_type="message.sent", data={},
            occurred_at=timezone.now(), event_id=f"evt_{n}",
        )  # fmt: skip
        delivery_attempt(delivery_id=d.pk)
    assert WebhookDelivery.objects.filter(state=DeliveryState.FAILED).count() == 10
    with django_assert_max_num_queries(20):
        assert owner_client.get(url("webhook", owner, endpoint.public_id)).status_code == 200
