"""The MTA's log records of campaign messages (sent, delivered, bounced) reach the workspace's
webhook endpoints: real hand-over through the injection stand-in, its records posted to the
hook, processed."""

import pytest

from sending.services.outbound import messages_hand_over
from tests.sending.test_outbound import alex, mta, receiver, reserve  # noqa: F401  (fixtures)
from webhooks.models import WebhookDelivery
from webhooks.services.endpoints import endpoint_create


@pytest.fixture
def listening(owner, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_HOSTS = True
    made, _secret = endpoint_create(
        workspace=owner.workspace, actor=owner.user, url="http://127.0.0.1:9/hooks"
    )
    return made


def test_a_campaign_messages_records_become_webhook_deliveries(
    alex,  # noqa: F811
    mta,  # noqa: F811
    post,
    listening,
):
    (message,) = reserve(alex)
    assert messages_hand_over().sent == 1
    mta.flush()
    post(mta.records)
    deliveries = WebhookDelivery.objects.filter(endpoint=listening)
    assert set(deliveries.values_list("event_type", flat=True)) >= {
        "message.sent",
        "message.delivered",
    }
    delivered = deliveries.get(event_type="message.delivered")
    assert delivered.payload["data"]["recipient"] == message.recipient
    # Posting the same records again (a replay) creates nothing more.
    count = deliveries.count()
    post(mta.records)
    assert deliveries.count() == count


def test_a_domains_tier_change_is_a_webhook_event_of_its_workspace_only(
    verified_domain, listening, stranger, django_capture_on_commit_callbacks
):
    from reputation.core.scores import scores_recompute
    from sending.models import SendingDomain

    # A domain recorded as premium with a high score: its real window (nothing sent) moves it.
    SendingDomain.objects.filter(pk=verified_domain.pk).update(
        tier="premium", trust_score=99.0, score_provisional=False
    )
    with django_capture_on_commit_callbacks(execute=True):
        changes = scores_recompute(domain_ids=[verified_domain.pk])
    change = changes[verified_domain.pk]
    kinds = set(
        WebhookDelivery.objects.filter(endpoint=listening).values_list("event_type", flat=True)
    )
    expected = {"domain.score_changed"} | (
        {"domain.tier_changed"} if change.tier != "premium" else set()
    )
    assert kinds == expected
    event = WebhookDelivery.objects.filter(endpoint=listening).first()
    assert event.payload["data"]["domain"] == verified_domain.name
    assert event.payload["data"]["before_score"] == 99.0
    assert not WebhookDelivery.objects.exclude(endpoint__workspace=verified_domain.workspace)
