"""Chaos: a real Celery worker keeps processing MTA records through a broker outage and a
database stall, with no manual step. Every record the hook answered 2xx for is processed
exactly once; records whose task was lost are picked up by the periodic tick.
"""

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from django.db import connection

from config.celery import app as celery_app
from config.celery import task_enqueue
from reputation.models import DomainDailyMetrics, Event, PendingRecord, RawRecord
from reputation.services.intake import PROCESSING_TASK
from tests.reputation.records import sent
from tests.servers.chaos import RedisServer, StallingProxy, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
TICK_EVERY = 1.0  # seconds between simulated periodic ticks (30 s in production)


@dataclass
class Worker:
    proc: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self) -> str:
        return "\n".join(self.log_text().splitlines()[-60:])


def _use_broker(url: str, *, eager: bool) -> None:
    celery_app.conf.update(broker_url=url, task_always_eager=eager)
    # Forget connections to the previous broker (what Celery itself does after a fork).
    celery_app._after_fork()


@pytest.fixture
def redis_broker(tmp_path: Path, settings) -> Iterator[RedisServer]:
    """A throwaway Redis as the broker; the hook queues to it (not eagerly)."""
    server = RedisServer(tmp_path)
    server.start()
    saved = celery_app.conf.broker_url, celery_app.conf.task_always_eager
    settings.CELERY_TASK_ALWAYS_EAGER = False
    _use_broker(server.url, eager=False)
    try:
        yield server
    finally:
        _use_broker(saved[0], eager=saved[1])
        server.kill()


@pytest.fixture
def db_proxy() -> Iterator[StallingProxy]:
    """The worker reaches PostgreSQL through this proxy, so the test can stall it."""
    with StallingProxy(int(connection.settings_dict["PORT"] or 5432)) as proxy:
        yield proxy


@pytest.fixture
def worker(redis_broker: RedisServer, db_proxy: StallingProxy, tmp_path: Path) -> Iterator[Worker]:
    """`celery worker` as production runs it (prefork pool, late acks), on the test database."""
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DJANGO_"))}
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@127.0.0.1:{db_proxy.port}/{db['NAME']}",
        CELERY_BROKER_URL=redis_broker.url,
        CELERY_TASK_ALWAYS_EAGER="false",
        EMBEDDED_SCHEDULER="false",
        DATABASE_CONN_MAX_AGE="0",
    )
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            # Django's system checks have their own tests; skipping them halves the start-up.
            [
                *(sys.executable, "-m", "celery", "--skip-checks", "-A", "config", "worker"),
                *("--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO"),
                *("--without-mingle", "--without-gossip", "--hostname", f"chaos-{os.getpid()}@%h"),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Worker(proc, log)
    try:
        wait_until(
            lambda: "ready." in running.log_text() or not running.alive(),
            timeout=30,
            what="the worker to start",
        )
        assert running.alive(), running.tail()
        yield running
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def post_batch(hook, domain, prefix: str, count: int) -> tuple[int, list[str]]:
    """POST `count` records in one batch; (status, recipients) as the MTA would see it."""
    recipients = [f"{prefix}-{i}@example.org" for i in range(count)]
    body = orjson.dumps([sent(domain, address) for address in recipients])
    response = hook.post("/hooks/kumomta/", body, content_type="application/json")
    assert response.status_code in (200, 503), response.content
    return response.status_code, recipients


def wait_processed(worker: Worker, accepted: list[str], *, timeout: float) -> None:
    """Tick (as beat would) until every accepted record is processed; the worker must live."""
    last_tick = 0.0

    def done() -> bool:
        nonlocal last_tick
        assert worker.alive(), "the worker died:\n" + worker.tail()
        if time.monotonic() - last_tick > TICK_EVERY:
            last_tick = time.monotonic()
            with contextlib.suppress(Exception):  # the broker may still be coming back
                task_enqueue(PROCESSING_TASK)
        return Event.objects.filter(recipient__in=accepted).count() >= len(accepted)

    try:
        wait_until(done, timeout=timeout, interval=0.2, what="records to be processed")
    except AssertionError as error:
        raise AssertionError(f"{error}\n--- worker log ---\n{worker.tail()}") from None


def assert_processed_once(domain, accepted: list[str]) -> None:
    assert not PendingRecord.objects.exists()
    assert RawRecord.objects.count() == len(accepted)
    events = Event.objects.filter(domain=domain, kind="sent")
    assert events.count() == len(accepted)
    assert sorted(events.values_list("recipient", flat=True)) == sorted(accepted)
    day = DomainDailyMetrics.objects.get(domain=domain)
    assert day.sent == len(accepted)  # counted once each, not once per delivery attempt


def received(worker: Worker) -> int:
    return worker.log_text().count(f"{PROCESSING_TASK}[")


def recover(hook, domain, redis_broker: RedisServer, worker: Worker, accepted: list[str]) -> None:
    """Redis comes back on its port; the same worker reconnects and takes new work too."""
    redis_broker.start()
    wait_processed(worker, accepted, timeout=30)
    status, recipients = post_batch(hook, domain, "after", 20)
    assert status == 200
    accepted += recipients
    wait_processed(worker, accepted, timeout=20)
    assert_processed_once(domain, accepted)
    assert worker.alive()
    assert "Unrecoverable error" not in worker.log_text()


def test_the_worker_survives_a_broker_outage(hook, sender, redis_broker, worker):
    accepted: list[str] = []
    status, recipients = post_batch(hook, sender, "before", 20)
    assert status == 200
    accepted += recipients
    wait_processed(worker, accepted, timeout=20)

    # Under load the worker always holds unacknowledged messages (late acks, countdowns):
    # one is in its hands when the broker goes.
    seen = received(worker)
    task_enqueue(PROCESSING_TASK, countdown=60)
    wait_until(lambda: received(worker) > seen, timeout=15, what="the worker to take a task")

    redis_broker.kill()
    for n in range(3):
        status, recipients = post_batch(hook, sender, f"during-{n}", 20)
        if status == 200:
            accepted += recipients
    assert len(accepted) == 80, "records are stored while the broker is down"

    recover(hook, sender, redis_broker, worker, accepted)


def test_the_worker_survives_a_broker_outage_while_the_database_stalls(
    hook, sender, redis_broker, db_proxy, worker
):
    accepted: list[str] = []
    db_proxy.stall()
    connections = db_proxy.connections
    status, recipients = post_batch(hook, sender, "stalled", 20)
    assert status == 200
    accepted += recipients
    # The worker runs the task (after its short countdown) and is stuck on the database,
    # holding the unacknowledged message.
    wait_until(
        lambda: db_proxy.connections > connections,
        timeout=15,
        what="the task to reach the database",
    )

    redis_broker.kill()
    status, recipients = post_batch(hook, sender, "outage", 20)
    if status == 200:
        accepted += recipients
    wait_until(
        lambda: "Connection to broker lost" in worker.log_text() or not worker.alive(),
        timeout=15,
        what="the worker to notice the broker is gone",
    )

    db_proxy.resume()  # the running task finishes (and acks) while the broker is still down
    wait_until(
        lambda: Event.objects.filter(recipient__startswith="stalled-").count() == 20,
        timeout=15,
        what="the stalled task to finish",
    )
    recover(hook, sender, redis_broker, worker, accepted)
