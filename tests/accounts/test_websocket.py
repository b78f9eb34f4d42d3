import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import transaction
from django.test import Client

from accounts.services import workspace_notify
from config.asgi import application
from reputation.models import Event
from sending.models import DomainStatus, SendingDomain
from sending.services.domains import domain_create
from tests.reputation.records import events_post, opened_event

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(membership) -> bytes:
    client = Client()
    client.force_login(membership.user)
    client.get(f"/w/{membership.workspace.public_id}/")  # makes it the current workspace
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def socket(cookie: bytes | None = None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, "/ws/workspace/", headers=headers)


@database_sync_to_async
def notify(workspace, *, rollback: bool = False) -> None:
    try:
        with transaction.atomic():
            workspace_notify(workspace=workspace, event="score", payload={"text": "Score 81"})
            if rollback:
                raise RuntimeError("rolled back")
    except RuntimeError:
        pass


async def test_an_authenticated_socket_receives_workspace_notify_through_redis(owner, stranger):
    assert "channels_redis" in settings.CHANNEL_LAYERS["default"]["BACKEND"]
    assert type(get_channel_layer()).__module__.startswith("channels_redis")
    owner_cookie = await database_sync_to_async(session_cookie)(owner)
    stranger_cookie = await database_sync_to_async(session_cookie)(stranger)
    mine, theirs = socket(owner_cookie), socket(stranger_cookie)
    assert (await mine.connect())[0]
    assert (await theirs.connect())[0]
    hello = await mine.receive_json_from(timeout=5)
    assert hello == {"event": "hello", "payload": {"workspace": owner.workspace.public_id}}
    await theirs.receive_json_from(timeout=5)

    await notify(owner.workspace, rollback=True)  # nothing is pushed for a rolled-back write
    await notify(owner.workspace)
    message = await mine.receive_json_from(timeout=5)
    assert message == {"event": "score", "payload": {"text": "Score 81"}}
    assert await mine.receive_nothing(timeout=0.2)
    assert await theirs.receive_nothing(timeout=0.2)  # other workspaces hear nothing
    await mine.disconnect()
    await theirs.disconnect()


async def test_a_socket_held_past_the_redis_read_timeout_still_hears_pushes(owner):
    # The layer waits for messages with a 5 s blocking read; a Redis socket timeout no longer
    # than that closed every socket at 5 s, and what was pushed during the reconnect was lost.
    assert type(get_channel_layer()).__module__.startswith("channels_redis")
    cookie = await database_sync_to_async(session_cookie)(owner)
    mine = socket(cookie)
    assert (await mine.connect())[0]
    await mine.receive_json_from(timeout=5)  # hello
    await asyncio.sleep(12)  # two and a half blocking reads
    await notify(owner.workspace)
    message = await mine.receive_json_from(timeout=5)
    assert message == {"event": "score", "payload": {"text": "Score 81"}}
    await asyncio.sleep(3)  # past 15 s, the socket still answers
    await mine.send_json_to({"event": "ping"})
    assert await mine.receive_json_from(timeout=5) == {"event": "pong", "payload": {}}
    await mine.disconnect()


async def test_an_anonymous_socket_is_refused(db):
    connected, code = await socket().connect()
    assert not connected
    assert code == 4401


async def test_a_foreign_origin_is_refused(owner):
    cookie = await database_sync_to_async(session_cookie)(owner)
    communicator = WebsocketCommunicator(
        application,
        "/ws/workspace/",
        headers=[(b"origin", b"http://evil.example"), (b"cookie", cookie)],
    )
    connected, _ = await communicator.connect()
    assert not connected


# A process other than the web server reports engagement through the product-events hook; the
# web server rescores and pushes.
HOOK_TOKEN = "events-hook-token"


async def test_an_open_socket_hears_the_score_that_posted_events_move(settings, owner):
    settings.KUMO_WEBHOOK_TOKEN = HOOK_TOKEN
    domain = await database_sync_to_async(
        lambda: domain_create(workspace=owner.workspace, actor=owner.user, name="engaged.com")
    )()
    await SendingDomain.objects.filter(pk=domain.pk).aupdate(status=DomainStatus.VERIFIED)
    cookie = await database_sync_to_async(session_cookie)(owner)
    listener = socket(cookie)
    assert (await listener.connect())[0]
    await listener.receive_json_from(timeout=5)  # hello

    events = [opened_event(domain, n) for n in range(3)] + [opened_event(domain, 0)]  # one replayed
    answer = await database_sync_to_async(events_post)(Client(), {"events": events}, HOOK_TOKEN)
    assert answer.status_code == 200
    assert answer.json() == {"received": 4, "recorded": 3}
    pushed = await listener.receive_json_from(timeout=5)
    assert pushed["event"] == "score"
    assert pushed["payload"]["domain"] == domain.public_id
    final = await SendingDomain.objects.aget(pk=domain.pk)
    assert pushed["payload"]["score"] == final.trust_score
    assert await listener.receive_nothing(timeout=0.3)  # rescored once for the whole batch
    assert await Event.objects.filter(domain=domain, kind="opened").acount() == 3
    await listener.disconnect()
