"""In-process runner for the periodic schedule (embedded profile only).

The services profile runs `celery beat` with django-celery-beat's database scheduler; here the
same CELERY_BEAT_SCHEDULE entries run on a daemon thread of the web process, eagerly.
"""

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime

from celery.schedules import schedule as celery_schedule
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from config.celery import app

logger = logging.getLogger(__name__)


@dataclass
class EmbeddedBeat:
    """Runs each due entry of the beat schedule; `tick` is called with the current time."""

    entries: dict = field(default_factory=lambda: dict(settings.CELERY_BEAT_SCHEDULE))
    last_run_at: dict[str, datetime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        app.loader.import_default_modules()  # registers every app's tasks (autodiscovery)

    def _schedule(self, name: str) -> celery_schedule:
        spec = self.entries[name]["schedule"]
        if isinstance(spec, (int, float)):
            spec = celery_schedule(run_every=spec)
        spec.nowfun = timezone.now
        return spec

    def tick(self, now: datetime) -> tuple[list[str], float]:
        """Run the due entries; return their names and the seconds until the next one is due."""
        ran: list[str] = []
        next_in = 60.0
        for name, entry in self.entries.items():
            sched = self._schedule(name)
            last = self.last_run_at.get(name)
            if last is None and not isinstance(sched, celery_schedule):
                # A clock-time entry (crontab) waits for its time; it does not run at boot.
                self.last_run_at[name] = now
                is_due, wait = False, sched.remaining_estimate(now).total_seconds()
            elif last is None:
                is_due, wait = True, 1.0
            else:
                is_due, wait = sched.is_due(last)
            if is_due:
                self.last_run_at[name] = now
                try:
                    app.tasks[entry["task"]].apply(
                        args=entry.get("args", ()), kwargs=entry.get("kwargs", {})
                    )
                except Exception:
                    logger.exception("periodic task %s failed", name)
                ran.append(name)
            next_in = min(next_in, max(1.0, float(wait)))
        return ran, next_in

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            close_old_connections()
            _, wait = self.tick(timezone.now())
            stop.wait(wait)


_started = threading.Event()
_stop = threading.Event()


def embedded_beat_start() -> threading.Thread | None:
    """Start the runner once per process."""
    if _started.is_set():
        return None
    _started.set()
    thread = threading.Thread(
        target=EmbeddedBeat().run_forever, args=(_stop,), name="embedded-beat", daemon=True
    )
    thread.start()
    return thread
