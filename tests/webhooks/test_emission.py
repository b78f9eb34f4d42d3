"""Product events recorded by `event_record` reach the workspace's endpoints after commit."""

import json

import pytest

from reputation.models import EventKind
from reputation.services.events import event_record
from sending.models import MessageKind
from webhooks.models import WebhookDelivery
from webhooks.services import deliveries

pytestmark = pytest.mark.django_db


def record(domain, kind=EventKind.REPLIED, key="reply:1", message_kind=MessageKind.CAMPAIGN):
    return event_record(
        domain=domain,
        kind=kind,
        source_key=key,
        recipient="Lead@Example.org",
        message_id="abc@acme-outreach.com",
        message_kind=message_kind,
        rescore=False,
    )


def test_a_recorded_reply_is_delivered_as_message_replied(
    domain, endpoint, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        record(domain)
    [request] = receiver.requests
    body = json.loads(request.body)
    assert body["type"] == "message.replied"
    assert body["id"].startswith("evt_") and "reply:1" not in body["id"]
    assert body["data"]["recipient"] == "lead@example.org"
    assert body["data"]["domain"] == "acme-outreach.com"
    # The same event recorded again (a replay) is neither recorded nor sent again.
    with django_capture_on_commit_callbacks(execute=True):
        assert record(domain) is None
    assert len(receiver.requests) == 1


def test_warm_up_events_and_repeat_opens_are_not_sent(
    domain, endpoint, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        record(domain, key="warmup:1", message_kind=MessageKind.WARMUP)
        record(domain, kind=EventKind.OPENED, key="open:1")
        record(domain, kind=EventKind.OPENED, key="open:2")  # same message: not a unique open
    assert [json.loads(r.body)["type"] for r in receiver.requests] == ["message.opened"]


def test_nothing_is_sent_when_the_transaction_rolls_back(domain, endpoint, receiver):
    # Without a commit the callbacks never run: no delivery exists.
    record(domain)
    assert WebhookDelivery.objects.count() == 0 and receiver.requests == []


def test_a_failing_webhook_never_costs_the_event(
    domain, endpoint, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    def broken(**kwargs):
        raise RuntimeError("webhooks are down")

    monkeypatch.setattr(deliveries, "webhook_emit", broken)
    with django_capture_on_commit_callbacks(execute=True):
        event = record(domain)
    assert event is not None and event.pk
    assert receiver.requests == []
