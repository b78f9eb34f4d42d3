from django.urls import path

from accounts.consumers import WorkspaceConsumer
from leaderboard.consumers import LeaderboardConsumer

websocket_urlpatterns = [
    path("ws/workspace/", WorkspaceConsumer.as_asgi()),
    path("ws/leaderboard/", LeaderboardConsumer.as_asgi()),
]
