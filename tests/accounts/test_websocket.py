import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import transaction
from django.test import Client

from accounts.services import workspace_notify
from config.asgi import application

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
