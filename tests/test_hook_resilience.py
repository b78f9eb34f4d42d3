"""The MTA's log hook and the API when something below them fails: a clear answer, never a 500
and never a hang."""

import logging
import socket
import threading
import time
from collections.abc import Iterator

import orjson
import psycopg
import pytest
from django.core.cache import cache
from django.db import connection

from config.celery import app as celery_app
from reputation.models import PendingRecord, RawRecord
from reputation.services.intake import PROCESSING_SCHEDULED
from tests.conftest import free_port, token_client
from tests.reputation.records import sent
from tests.servers.chaos import RedisServer

pytestmark = pytest.mark.django_db


def with_nested_meta(record: dict, depth: int) -> bytes:
    """The record's JSON with its "meta" `depth` arrays deep (orjson reads 1,024 levels of
    nesting but writes only 254, so the text is built by hand)."""
    text = orjson.dumps({**record, "meta": "NESTED"})
    return text.replace(b'"NESTED"', b"[" * depth + b'"deep"' + b"]" * depth)


def redis_cache(url: str) -> dict:
    return {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }


@pytest.fixture
def throwaway_redis(tmp_path) -> Iterator[RedisServer]:
    """A Redis of this test's own, so the test can stop it."""
    with RedisServer(tmp_path) as server:
        yield server


def queue_through(broker_url: str, settings, monkeypatch) -> None:
    """The services profile: processing is queued through a broker, not run in the request."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)  # Celery read it once
    monkeypatch.setitem(celery_app.conf, "broker_url", broker_url)
    # Celery keeps its connection pools once made: new ones reach the broker set above.
    monkeypatch.setattr(celery_app, "_pool", None)
    monkeypatch.setattr(celery_app.amqp, "_producer_pool", None)


# --- Nesting orjson can read but not write ---------------------------------------------------


@pytest.mark.parametrize("depth", [254, 600, 1022])
def test_it_refuses_records_nested_too_deeply_to_store(post, sender, depth):
    # The record is one level, its "meta" the rest: 255 to 1,023 levels in all.
    deep = with_nested_meta(sent(sender, "b@example.org"), depth)
    body = b"[" + orjson.dumps(sent(sender, "a@example.org")) + b"," + deep + b"]"
    response = post(body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "malformed"
    assert error["message"] == "Record 1 is nested too deeply to be stored (at most 254 levels)."
    assert not RawRecord.objects.exists()
    assert not PendingRecord.objects.exists()


def test_it_stores_records_nested_up_to_the_limit(post, sender):
    deepest = with_nested_meta(sent(sender, "a@example.org"), 253)  # 254 levels with the record
    response = post(b"[" + deepest + b"]")
    assert response.status_code == 200
    assert RawRecord.objects.count() == 1


# --- Redis down ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_answers_2xx_when_redis_is_down_because_the_records_are_stored(
    hook, sender, settings, throwaway_redis, monkeypatch, caplog
):
    # Cache (the "processing scheduled" flag) and broker are the same Redis, which goes down.
    queue_through(throwaway_redis.url, settings, monkeypatch)
    settings.CACHES = redis_cache(throwaway_redis.url)
    cache.set("warm", 1)  # a pooled connection that the outage breaks
    throwaway_redis.kill()

    with caplog.at_level(logging.WARNING, logger="reputation.services.intake"):
        response = hook.post(
            "/hooks/kumomta/",
            orjson.dumps([sent(sender, "a@example.org"), sent(sender, "b@example.org")]),
            content_type="application/json",
        )

    assert response.status_code == 200
    assert response.json() == {"received": 2, "unique": 2}
    assert RawRecord.objects.count() == 2
    assert PendingRecord.objects.count() == 2  # waiting for the periodic tick
    assert "could not queue record processing" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_it_answers_2xx_when_only_the_broker_is_down(hook, sender, settings, monkeypatch, caplog):
    queue_through(f"redis://127.0.0.1:{free_port()}/0", settings, monkeypatch)  # nobody there

    with caplog.at_level(logging.WARNING, logger="reputation.services.intake"):
        response = hook.post(
            "/hooks/kumomta/",
            orjson.dumps([sent(sender, "a@example.org")]),
            content_type="application/json",
        )

    assert response.status_code == 200
    assert PendingRecord.objects.count() == 1
    assert "could not queue record processing" in caplog.text
    assert cache.get(PROCESSING_SCHEDULED) is None  # the next batch tries the broker again


def test_the_api_answers_without_throttling_when_the_cache_is_down(owner, settings, caplog):
    client = token_client(owner)
    settings.CACHES = redis_cache(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
    with caplog.at_level(logging.WARNING, logger="config.throttling"):
        response = client.get("/api/v1/me/")
    assert response.status_code == 200
    assert "the cache is unavailable" in caplog.text


# --- PostgreSQL that does not answer ---------------------------------------------------------


@pytest.fixture
def stalled_postgres() -> Iterator[int]:
    """A loopback port that accepts TCP connections (the kernel completes the handshake) and
    never says a word: a PostgreSQL that is hung."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()  # queued connections are reset: a request still waiting ends now


def test_it_answers_503_soon_when_postgres_accepts_but_never_answers(
    hook, sender, stalled_postgres
):
    body = orjson.dumps([sent(sender, "a@example.org")])
    settings_dict = connection.settings_dict  # shared by every thread's connection
    real = settings_dict["HOST"], settings_dict["PORT"]
    answers: list = []

    def request() -> None:
        # A thread of its own: its own database connection (the test's stays open).
        answers.append(hook.post("/hooks/kumomta/", body, content_type="application/json"))

    settings_dict["HOST"], settings_dict["PORT"] = "127.0.0.1", str(stalled_postgres)
    started = time.monotonic()
    worker = threading.Thread(target=request, daemon=True)
    try:
        worker.start()
        worker.join(timeout=15)
        elapsed = time.monotonic() - started
    finally:
        settings_dict["HOST"], settings_dict["PORT"] = real
    assert not worker.is_alive(), "the hook was still waiting for the database after 15 s"
    assert elapsed < 10
    [response] = answers
    assert response.status_code == 503
    assert response["Retry-After"] == "30"


@pytest.mark.django_db(transaction=True)
def test_it_answers_503_when_a_statement_waits_too_long(post, sender, settings):
    settings.KUMO_WEBHOOK_STATEMENT_TIMEOUT_SECONDS = 0.5
    db = connection.settings_dict
    table = RawRecord._meta.db_table
    with psycopg.connect(
        dbname=db["NAME"],
        host=db["HOST"],
        port=db["PORT"],
        user=db["USER"],
        password=db["PASSWORD"],
    ) as locker:
        # Another session holds the table (a migration, a long VACUUM FULL ...) for 8 s at most.
        locker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        release = threading.Timer(8, locker.rollback)
        release.start()
        try:
            started = time.monotonic()
            response = post([sent(sender, "a@example.org")])
            elapsed = time.monotonic() - started
        finally:
            release.cancel()
            locker.rollback()
    assert response.status_code == 503
    assert elapsed < 5
    assert not RawRecord.objects.exists()
