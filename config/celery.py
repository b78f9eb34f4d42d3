"""The Celery app. The periodic schedule lives in settings (CELERY_BEAT_SCHEDULE)."""

import importlib
import os

import redis.exceptions
from celery import Celery
from kombu.transport import redis as kombu_redis

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("trustgate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class _RedisChannel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict:
        # When the broker drops, the worker closes the lost connection, which detaches the
        # transport from it; closing a channel afterwards still tries to hand unacknowledged
        # (late-ack) messages back to Redis, and kombu 5.7 then fails with AttributeError
        # ("'NoneType' object has no attribute 'hostname'"), an error the worker does not expect
        # there: it shuts down instead of reconnecting. Raised as a connection error, it is
        # ignored like any other on a lost connection (the message is redelivered by Redis or
        # its records picked up by the periodic tick), and late acks of tasks that finish
        # meanwhile are logged instead of stopping the worker. docs: README, "Broker outages".
        if self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection is closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport, surviving the loss of its connection (CELERY_BROKER_TRANSPORT)."""

    Channel = _RedisChannel


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
