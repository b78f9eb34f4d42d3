from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.middleware import SESSION_KEY
from accounts.models import Membership
from accounts.services import workspace_group

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NO_WORKSPACE = 4404


@database_sync_to_async
def _current_membership(user, wanted: str | None) -> Membership | None:
    memberships = Membership.objects.select_related("workspace").filter(user=user)
    if wanted:
        found = memberships.filter(workspace__public_id=wanted).first()
        if found:
            return found
    return memberships.order_by("workspace__name", "workspace_id").first()


class WorkspaceConsumer(AsyncJsonWebsocketConsumer):
    """Live updates for the user's current workspace; anonymous sockets are refused."""

    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        session = self.scope.get("session")
        wanted = session.get(SESSION_KEY) if session is not None else None
        membership = await _current_membership(user, wanted)
        if membership is None:
            await self.close(code=CLOSE_NO_WORKSPACE)
            return
        self.group = workspace_group(membership.workspace)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json(
            {"event": "hello", "payload": {"workspace": membership.workspace.public_id}}
        )

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: dict, **kwargs) -> None:
        # The socket is server-push only; a ping gets a pong so clients can check liveness.
        if content.get("event") == "ping":
            await self.send_json({"event": "pong", "payload": {}})

    async def workspace_event(self, message: dict) -> None:
        await self.send_json({"event": message["event"], "payload": message["payload"]})
