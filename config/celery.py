"""The Celery app. The periodic schedule lives in settings (CELERY_BEAT_SCHEDULE)."""

import importlib
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("trustgate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def task_enqueue(name: str, *args: object, countdown: float | None = None) -> None:
    """Queue a task by its registered name ("app.tasks.function").

    Services queue follow-up work this way instead of importing the tasks module, which sits
    above them (tasks call services): the layers stay one-directional."""
    if name not in app.tasks:
        # Autodiscovery runs when a worker starts; a web process registers the module on use.
        importlib.import_module(name.rpartition(".")[0])
    task = app.tasks[name]
    if countdown is None:
        task.apply_async(args=args)
    else:
        task.apply_async(args=args, countdown=countdown)
