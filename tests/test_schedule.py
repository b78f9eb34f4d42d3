"""The periodic schedule: declared once in settings, run by django-celery-beat's database
scheduler in the services profile and by the in-process runner in the embedded profile."""

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from accounts.tasks import HEARTBEAT_KEY, heartbeat
from config.celery import app
from config.embedded_beat import EmbeddedBeat

ROOT = Path(__file__).resolve().parent.parent


def test_the_in_process_runner_runs_due_entries_once_per_interval(db):
    beat = EmbeddedBeat()
    now = timezone.now()
    ran, wait = beat.tick(now)
    assert "heartbeat" in ran
    assert "invitation-expiry" not in ran  # a clock-time entry waits for its minute
    assert cache.get(HEARTBEAT_KEY) is not None
    assert 0 < wait <= 60

    cache.delete(HEARTBEAT_KEY)
    ran, _ = beat.tick(now + timedelta(seconds=5))
    assert "heartbeat" not in ran
    assert cache.get(HEARTBEAT_KEY) is None

    beat.last_run_at["heartbeat"] = now - timedelta(seconds=61)
    ran, _ = beat.tick(now)
    assert "heartbeat" in ran
    assert cache.get(HEARTBEAT_KEY) is not None


@pytest.mark.django_db(transaction=True)  # the scheduler closes its DB connection
def test_the_database_scheduler_installs_the_schedule_declared_in_code():
    DatabaseScheduler(app=app, lazy=False)
    task = PeriodicTask.objects.get(name="heartbeat")
    assert task.task == "accounts.tasks.heartbeat"
    assert task.interval.every == 60
    assert PeriodicTask.objects.filter(task="accounts.tasks.invitations_expire").exists()


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_tasks_from_the_redis_broker():
    env = {**os.environ, "CELERY_TASK_ALWAYS_EAGER": "false"}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
            "-Q",
            "tests-heartbeat",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        cache.delete(HEARTBEAT_KEY)
        heartbeat.apply_async(queue="tests-heartbeat")
        deadline = time.monotonic() + 30
        while cache.get(HEARTBEAT_KEY) is None and time.monotonic() < deadline:
            assert worker.poll() is None, worker.stderr.read().decode()
            time.sleep(0.1)
        assert cache.get(HEARTBEAT_KEY) is not None
    finally:
        worker.terminate()
        worker.wait(timeout=15)
