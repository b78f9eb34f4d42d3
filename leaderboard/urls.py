from django.urls import path

from leaderboard import views

workspace_urlpatterns = [
    path("leaderboard/", views.leaderboard, name="leaderboard"),
]
