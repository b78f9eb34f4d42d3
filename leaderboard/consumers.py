"""The public board's live channel: /ws/leaderboard/ (no login needed; it only ever carries
the public entries the board service pushes)."""

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from leaderboard.services.board import GROUP


class LeaderboardConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def receive_json(self, content: dict, **kwargs: object) -> None:
        if content.get("event") == "ping":
            await self.send_json({"event": "pong", "payload": {}})

    async def board_event(self, message: dict) -> None:
        await self.send_json({"event": message["event"], "payload": message["payload"]})
