"""The KumoMTA hook: authentication, bad input, idempotency, durability."""

import base64

import pytest
from django.db import connection

from reputation.models import DomainDailyMetrics, Event, PendingRecord, RawRecord
from sending.models import Suppression
from tests.conftest import TOKEN, free_port
from tests.reputation.records import delivered, sent, traffic

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "auth",
    [
        None,
        "Bearer wrong",
        "Bearer",
        "Basic " + base64.b64encode(b"kumo:wrong").decode(),
        "Token x",
    ],
)
def test_it_refuses_the_wrong_credentials(hook, post, sender, auth):
    hook.credentials(**({"HTTP_AUTHORIZATION": auth} if auth else {}))
    response = post([sent(sender, "a@example.org")])
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert not RawRecord.objects.exists()


def test_basic_auth_with_the_token_as_password_works(hook, post, sender):
    hook.credentials(
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"kumo:{TOKEN}".encode()).decode()
    )
    assert post(sent(sender, "a@example.org")).status_code == 200
    assert RawRecord.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "empty"),
        (b'"a string"', "not a log record"),
        (b'[{"type": "Reception"}, 42]', "Record 1"),
        (b'[{"no_type": true}]', "Record 0"),
    ],
)
def test_malformed_bodies_get_400_and_store_nothing(hook, post, sender, body, why):
    response = post(body)
    assert response.status_code == 400
    assert why in response.json()["error"]["message"]
    assert not RawRecord.objects.exists()


def test_an_oversized_body_gets_413_and_stores_nothing(hook, post, sender, settings):
    settings.KUMO_WEBHOOK_MAX_BYTES = 2000
    response = post(traffic(sender, 10))
    assert response.status_code == 413
    assert not RawRecord.objects.exists()


def test_single_records_and_arrays_are_stored_and_processed(hook, post, sender):
    assert post(sent(sender, "one@example.org")).json() == {"received": 1, "unique": 1}
    assert post(traffic(sender, 3, prefix="b")).json()["received"] == 6
    assert PendingRecord.objects.count() == 0
    day = DomainDailyMetrics.objects.get(domain=sender)
    assert (day.sent, day.delivered) == (4, 3)


def test_replaying_a_batch_changes_nothing(hook, post, sender):
    batch = traffic(sender, 20, bounces=2)
    post(batch)
    first = (
        RawRecord.objects.count(),
        Event.objects.count(),
        list(DomainDailyMetrics.objects.values_list("sent", "hard_bounces")),
        Suppression.objects.count(),
    )
    assert post(batch).status_code == 200
    again = (
        RawRecord.objects.count(),
        Event.objects.count(),
        list(DomainDailyMetrics.objects.values_list("sent", "hard_bounces")),
        Suppression.objects.count(),
    )
    assert again == first == (40, 40, [(20, 2)], 2)


def test_unknown_record_types_and_extra_fields_are_accepted_and_ignored(hook, post, sender):
    odd = sent(sender, "x@example.org", type="XferOut", brand_new_field={"a": 1})
    future = {"type": "SomethingNew2030", "id": "abc", "whatever": [1, 2]}
    response = post([odd, future, delivered(sender, "y@example.org", extra=True)])
    assert response.status_code == 200
    assert RawRecord.objects.count() == 3
    assert list(Event.objects.values_list("kind", flat=True)) == ["delivered"]


def test_records_for_unknown_tenants_are_stored_but_count_for_nobody(hook, post, sender):
    stray = sent(sender, "x@example.org", meta={"tenant": "dom_unknown"}, queue="dom_unknown@x")
    assert post([stray]).status_code == 200
    assert not PendingRecord.objects.exists()
    assert not Event.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_database_unavailable_gets_503_so_the_mta_retries(hook, post, sender):
    settings_dict = connection.settings_dict
    real_port = settings_dict["PORT"]
    connection.close()
    settings_dict["PORT"] = str(free_port())  # nothing listens there: the database is "down"
    try:
        response = post([sent(sender, "a@example.org")])
    finally:
        connection.close()
        settings_dict["PORT"] = real_port
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert not RawRecord.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_records_are_kept_and_processed_once_it_is_back(
    hook, post, sender, settings
):
    from config.celery import app
    from reputation.tasks import records_process

    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.task_always_eager = False
    real = app.conf.broker_url
    app.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"  # Redis is "down"
    app.conf.task_publish_retry = False
    app.conf.broker_connection_timeout = 1
    app.__dict__.pop("pool", None)
    app._pool = None
    try:
        response = post(traffic(sender, 5))
    finally:
        app.conf.broker_url = real
        app.conf.task_always_eager = True
        app.conf.task_publish_retry = True
        app._pool = None
    assert response.status_code == 200
    assert PendingRecord.objects.count() == 10
    assert not Event.objects.exists()

    assert records_process.apply().get() == 10  # the periodic safety net, once Redis is back
    assert Event.objects.count() == 10
    assert DomainDailyMetrics.objects.get(domain=sender).sent == 5
