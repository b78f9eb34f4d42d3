"""Emission, signed delivery to a real loopback receiver, backoff, giving up and auto-disable."""

import base64
import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from accounts.models import AuditLog
from config.errors import ApplicationError
from webhooks.models import DeliveryState, WebhookDelivery, WebhookEndpoint
from webhooks.services.deliveries import (
    BACKOFF,
    DISABLE_AFTER_GAVE_UP,
    WebhookEvent,
    deliveries_due,
    delivery_attempt,
    webhook_emit,
    webhook_emit_many,
    webhook_test_send,
)
from webhooks.services.endpoints import endpoint_create, endpoint_disable, endpoint_enable
from webhooks.tasks import webhooks_deliver_tick

pytestmark = pytest.mark.django_db


def emit(workspace, event_id="evt_1", event_type="message.replied", at=None):
    return webhook_emit(
        workspace_id=workspace.pk,
        event_type=event_type,
        data={"recipient": "lead@example.org", "at": at or timezone.now()},
        occurred_at=at or timezone.now(),
        event_id=event_id,
    )


def verify_independently(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's side, as docs/webhooks.md shows it (no product code involved)."""
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [s.split(",", 1)[1] for s in headers["webhook-signature"].split()]
    return any(hmac.compare_digest(expected, s) for s in given)


def test_it_posts_a_signed_event_the_receiver_can_verify(owner, endpoint, receiver):
    [delivery] = emit(owner.workspace)
    done = delivery_attempt(delivery_id=delivery.pk)
    assert done is not None and done.state == DeliveryState.SUCCEEDED
    [request] = receiver.requests
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"] == "evt_1"
    assert abs(int(headers["webhook-timestamp"]) - timezone.now().timestamp()) < 60
    assert verify_independently(endpoint.secret, headers, request.body)
    assert not verify_independently(endpoint.secret, headers, request.body + b" ")
    other = endpoint_create(workspace=owner.workspace, actor=owner.user, url=receiver.url)[1]
    assert not verify_independently(other, headers, request.body)
    body = json.loads(request.body)
    assert body["id"] == "evt_1" and body["type"] == "message.replied"
    assert body["workspace"] == owner.workspace.public_id
    assert body["data"]["recipient"] == "lead@example.org"
    assert done.last_status_code == 200 and done.attempt_log.count() == 1


def test_the_standard_webhooks_reference_library_verifies_our_signature(owner, endpoint, receiver):
    [delivery] = emit(owner.workspace)
    delivery_attempt(delivery_id=delivery.pk)
    [request] = receiver.requests
    headers = {k.lower(): v for k, v in request.headers.items()}
    payload = Webhook(endpoint.secret).verify(request.body, headers)
    assert payload["id"] == "evt_1" and payload["type"] == "message.replied"
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint.secret).verify(request.body.replace(b"evt_1", b"evt_2"), headers)


def test_it_delivers_once_more_after_backoff_when_the_receiver_fails_three_times(
    owner, endpoint, receiver
):
    receiver.script = [500, 503, 502]
    [delivery] = emit(owner.workspace)
    start = timezone.now()
    now = start
    states = []
    for n in range(4):
        done = delivery_attempt(delivery_id=delivery.pk, now=now)
        states.append(done.state)
        # Not due again before its backoff has passed: nothing is sent.
        assert delivery_attempt(delivery_id=delivery.pk, now=now + timedelta(seconds=1)) is None
        if n < 3:
            assert done.next_attempt_at == now + BACKOFF[n]
        now = done.next_attempt_at
    assert states == ["failed", "failed", "failed", "succeeded"]
    assert len(receiver.requests) == 4
    delivery.refresh_from_db()
    log = list(delivery.attempt_log.values_list("number", "status_code"))
    assert log == [(1, 500), (2, 503), (3, 502), (4, 200)]
    assert delivery.attempts == 4 and delivery.delivered_at is not None
    # Every retry carries the same id (receivers deduplicate on it) and the same body.
    assert {r.headers["webhook-id"] for r in receiver.requests} == {"evt_1"}
    assert len({r.body for r in receiver.requests}) == 1
    # Done: a late duplicate task or tick does nothing.
    assert delivery_attempt(delivery_id=delivery.pk, now=now + timedelta(days=1)) is None
    assert len(receiver.requests) == 4


def test_the_tick_picks_due_retries_and_is_safe_twice(owner, endpoint, receiver):
    receiver.script = [500]
    [delivery] = emit(owner.workspace)
    delivery_attempt(delivery_id=delivery.pk)
    assert deliveries_due() == []  # waiting out its 30 s
    assert deliveries_due(now=timezone.now() + timedelta(seconds=31)) == [delivery.pk]
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert webhooks_deliver_tick() == 1
    assert webhooks_deliver_tick() == 0
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.SUCCEEDED and len(receiver.requests) == 2


def test_a_claimed_delivery_is_not_posted_twice(owner, endpoint, receiver):
    [delivery] = emit(owner.workspace)
    now = timezone.now()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(claimed_at=now)
    assert delivery_attempt(delivery_id=delivery.pk, now=now) is None
    assert receiver.requests == []
    # A dead worker's claim is taken over after five minutes.
    later = now + timedelta(minutes=6)
    assert delivery_attempt(delivery_id=delivery.pk, now=later).state == DeliveryState.SUCCEEDED


def _run_until_done(delivery_id: int, start):
    now, attempts = start, 0
    while True:
        done = delivery_attempt(delivery_id=delivery_id, now=now)
        attempts += 1
        if done.state != DeliveryState.FAILED:
            return done, attempts, now
        now = done.next_attempt_at


def test_it_gives_up_24_hours_after_the_first_attempt(owner, endpoint, receiver):
    receiver.default = 500
    [delivery] = emit(owner.workspace)
    start = timezone.now()
    done, attempts, last = _run_until_done(delivery.pk, start)
    assert done.state == DeliveryState.GAVE_UP
    assert last - start <= timedelta(hours=24)
    assert attempts == 10 == done.attempt_log.count() == len(receiver.requests)
    endpoint.refresh_from_db()
    assert endpoint.active and endpoint.consecutive_failures == 1


def test_repeated_failure_disables_the_endpoint_and_emails_the_owners(
    owner, endpoint, receiver, teammate, django_capture_on_commit_callbacks
):
    receiver.default = 500
    start = timezone.now()
    for n in range(DISABLE_AFTER_GAVE_UP):
        [delivery] = emit(owner.workspace, event_id=f"evt_{n}")
        with django_capture_on_commit_callbacks(execute=True):
            done, _, _ = _run_until_done(delivery.pk, timezone.now())
        assert done.state == DeliveryState.GAVE_UP
    endpoint.refresh_from_db()
    assert not endpoint.active
    assert "5 deliveries in a row failed" in endpoint.disabled_reason
    [sent] = mail.outbox
    assert sent.to == ["owner@acme.test"]  # owners only, not the teammate
    assert receiver.url in sent.body
    assert AuditLog.objects.filter(action="webhook.disable", actor=None).count() == 1
    # A disabled endpoint gets nothing: no new deliveries, and nothing due is sent.
    before = len(receiver.requests)
    assert emit(owner.workspace, event_id="evt_after") == []
    assert deliveries_due(now=start + timedelta(days=3)) == []
    assert len(receiver.requests) == before
    # Turned back on by an owner, it receives again and its failure count starts over.
    receiver.default = 200
    endpoint_enable(endpoint=endpoint, actor=owner.user)
    [delivery] = emit(owner.workspace, event_id="evt_back")
    assert delivery_attempt(delivery_id=delivery.pk).state == DeliveryState.SUCCEEDED
    endpoint.refresh_from_db()
    assert endpoint.active and endpoint.consecutive_failures == 0


def test_a_success_resets_the_failure_count(owner, endpoint, receiver):
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=4)
    [delivery] = emit(owner.workspace)
    delivery_attempt(delivery_id=delivery.pk)
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0


def test_disabling_gives_up_outstanding_deliveries(owner, endpoint, receiver):
    [delivery] = emit(owner.workspace)
    endpoint_disable(endpoint=endpoint, actor=owner.user, reason="Maintenance")
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.GAVE_UP
    assert delivery_attempt(delivery_id=delivery.pk) is None
    assert receiver.requests == []
    assert mail.outbox == []  # a person did it: nobody is emailed


def test_emission_follows_subscriptions_and_is_idempotent(owner, stranger, receiver):
    wanted, _ = endpoint_create(
        workspace=owner.workspace, actor=owner.user, url=receiver.url, events=["message.opened"]
    )
    everything, _ = endpoint_create(workspace=owner.workspace, actor=owner.user, url=receiver.url)
    theirs, _ = endpoint_create(workspace=stranger.workspace, actor=stranger.user, url=receiver.url)
    replied = emit(owner.workspace, event_id="evt_r", event_type="message.replied")
    assert [d.endpoint_id for d in replied] == [everything.pk]
    opened = emit(owner.workspace, event_id="evt_o", event_type="message.opened")
    assert sorted(d.endpoint_id for d in opened) == sorted([wanted.pk, everything.pk])
    assert emit(owner.workspace, event_id="evt_o", event_type="message.opened") == []
    assert WebhookDelivery.objects.filter(endpoint=theirs).count() == 0
    assert WebhookDelivery.objects.count() == 3


def test_emission_refuses_an_unknown_type(owner, endpoint):
    with pytest.raises(ApplicationError, match="Unknown webhook event type"):
        emit(owner.workspace, event_type="message.exploded")
    assert WebhookDelivery.objects.count() == 0


def test_deliveries_are_queued_on_commit(
    owner, endpoint, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        [delivery] = emit(owner.workspace)
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.SUCCEEDED and len(receiver.requests) == 1


def test_a_redirect_is_not_followed(owner, endpoint, receiver):
    receiver.script = [302]
    receiver.location = receiver.url + "/elsewhere"
    [delivery] = emit(owner.workspace)
    done = delivery_attempt(delivery_id=delivery.pk)
    assert done.state == DeliveryState.FAILED and done.last_status_code == 302
    assert "redirects are not followed" in done.last_error
    assert [r.path for r in receiver.requests] == ["/hooks/trustgate"]


def test_internal_addresses_are_refused_outside_tests(owner, endpoint, receiver, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_HOSTS = False
    settings.DEBUG = False
    [delivery] = emit(owner.workspace)
    done = delivery_attempt(delivery_id=delivery.pk)
    assert done.state == DeliveryState.FAILED and done.last_status_code is None
    assert "internal address" in done.last_error
    assert receiver.requests == []


def test_an_unreachable_receiver_is_a_failed_attempt(owner, receiver):
    endpoint_create(workspace=owner.workspace, actor=owner.user, url="http://127.0.0.1:9/nothing")
    [delivery] = emit(owner.workspace)
    done = delivery_attempt(delivery_id=delivery.pk)
    assert done.state == DeliveryState.FAILED and done.last_status_code is None
    assert done.last_error.startswith("Could not connect")


def test_the_test_event_is_sent_once_and_never_counts_against_the_endpoint(
    owner, endpoint, receiver, teammate
):
    receiver.default = 500
    delivery = webhook_test_send(endpoint=endpoint, actor=owner.user)
    done = delivery_attempt(delivery_id=delivery.pk)
    assert done.state == DeliveryState.GAVE_UP and done.attempts == 1
    assert json.loads(receiver.requests[0].body)["type"] == "webhook.test"
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0
    with pytest.raises(ApplicationError, match="owners and admins"):
        webhook_test_send(endpoint=endpoint, actor=teammate.user)
    endpoint_disable(endpoint=endpoint, actor=owner.user, reason="off")
    with pytest.raises(ApplicationError, match="disabled"):
        webhook_test_send(endpoint=endpoint, actor=owner.user)


def test_a_batch_skips_workspaces_without_endpoints(owner, stranger, endpoint, receiver):
    now = timezone.now()
    batch = [
        WebhookEvent(owner.workspace.pk, "message.delivered", {"n": 1}, now, "evt_b1"),
        WebhookEvent(stranger.workspace.pk, "message.delivered", {"n": 2}, now, "evt_b2"),
        WebhookEvent(owner.workspace.pk, "message.bounced", {"bounce": "hard"}, now, "evt_b3"),
    ]
    assert webhook_emit_many(events=batch) == 2
    assert webhook_emit_many(events=batch) == 0  # the same batch again: nothing new
    assert set(WebhookDelivery.objects.values_list("event_id", flat=True)) == {"evt_b1", "evt_b3"}
