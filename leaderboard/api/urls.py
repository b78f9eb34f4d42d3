from django.urls import path

from leaderboard.api.views import LeaderboardMeView, LeaderboardView

urlpatterns = [
    path("leaderboard/", LeaderboardView.as_view(), name="api-leaderboard"),
    path("leaderboard/me/", LeaderboardMeView.as_view(), name="api-leaderboard-me"),
]
