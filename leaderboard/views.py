from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.decorators import workspace_view


@workspace_view()
def leaderboard(request: HttpRequest) -> HttpResponse:
    return render(request, "leaderboard/leaderboard.html")
