"""The leaderboard's pages: the public board (top 100, season, live), the avatars, and the
workspace's own page (consent, rank, neighbours, spread of scores). Thin: reads come from the
selectors, changes from the consent service."""

from django.contrib import messages
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import workspace_view
from accounts.http import WorkspaceRequest
from accounts.models import Role
from config.celery import task_enqueue
from config.errors import ApplicationError
from leaderboard.avatar import avatar_svg
from leaderboard.ranking import RANKED_FLOOR
from leaderboard.selectors import (
    BoardUnavailable,
    Entry,
    board_distribution,
    board_page,
    board_size,
    season_most_improved,
    workspace_standing,
)
from leaderboard.services.consent import (
    TERMS,
    TERMS_VERSION,
    leaderboard_identity_reroll,
    leaderboard_opt_in,
    leaderboard_opt_out,
)

TOP = 100
REBUILD_TASK = "leaderboard.tasks.leaderboard_rebuild"


def _rebuild_soon() -> None:
    """The board is missing from Redis: ask for a rebuild (once a minute at most)."""
    if cache.add("leaderboard:rebuild-asked", 1, timeout=60):
        task_enqueue(REBUILD_TASK)


def _board() -> tuple[list[Entry] | None, int]:
    try:
        return board_page(offset=0, limit=TOP), board_size()
    except BoardUnavailable:
        _rebuild_soon()
        return None, 0


@require_GET
def board(request: HttpRequest) -> HttpResponse:
    """The public board: the top 100, or this month's most improved (?view=season)."""
    season = request.GET.get("view") == "season"
    entries, size = (season_most_improved(limit=TOP), None) if season else _board()
    context = {
        "entries": entries,
        "size": size,
        "season": season,
        "floor": RANKED_FLOOR,
    }
    return render(request, "leaderboard/board.html", context)


@require_GET
def board_rows(request: HttpRequest) -> HttpResponse:
    """The top 100's rows alone (the live page re-fetches them when the board moves)."""
    entries, size = _board()
    return render(
        request, "leaderboard/partials/board_rows.html", {"entries": entries, "size": size}
    )


@require_GET
@cache_control(public=True, max_age=86400, immutable=True)
def avatar(request: HttpRequest, seed: str) -> HttpResponse:
    try:
        svg = avatar_svg(seed)
    except ValueError:
        raise Http404("No such avatar.") from None
    return HttpResponse(svg, content_type="image/svg+xml")


# --- the workspace's page ------------------------------------------------------------------------


def _own_context(request: WorkspaceRequest) -> dict[str, object]:
    standing = workspace_standing(workspace=request.workspace)
    distribution: list[int] = []
    if standing.participant is not None and not standing.unavailable:
        try:
            distribution = board_distribution()
        except BoardUnavailable:
            distribution = []
    if standing.unavailable:
        _rebuild_soon()
    peak = max(distribution, default=0)
    return {
        "standing": standing,
        "terms": TERMS,
        "terms_version": TERMS_VERSION,
        "floor": RANKED_FLOOR,
        "is_owner": request.membership.has_role(Role.OWNER),
        "distribution": [
            {"low": i * 10, "count": n, "height": round(100 * n / peak) if peak else 0}
            for i, n in enumerate(distribution)
        ],
        "own_band": (
            min(9, int(standing.standing.entry["score"] // 10))
            if standing.standing
            and standing.standing.entry
            and standing.standing.entry.get("score") is not None
            else None
        ),
    }


@workspace_view()
@require_GET
def leaderboard(request: WorkspaceRequest) -> HttpResponse:
    return render(request, "leaderboard/leaderboard.html", _own_context(request))


@workspace_view()
@require_GET
def leaderboard_card(request: WorkspaceRequest) -> HttpResponse:
    """The dashboard's card (re-fetched when the workspace socket says the board moved)."""
    standing = workspace_standing(workspace=request.workspace)
    return render(request, "leaderboard/partials/dashboard_card.html", {"board": standing})


def _back(request: WorkspaceRequest) -> HttpResponse:
    return redirect(reverse("leaderboard", args=[request.workspace.public_id]))


@workspace_view(min_role=Role.OWNER)
@require_POST
def leaderboard_join(request: WorkspaceRequest) -> HttpResponse:
    if request.POST.get("agree") != "yes":
        messages.error(request, "Tick the box to agree to the terms before joining.")
        return _back(request)
    try:
        leaderboard_opt_in(
            workspace=request.workspace,
            actor=request.user,
            terms_version=request.POST.get("terms_version", ""),
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request, f"You are on the board as {request.workspace.leaderboard_handle}."
        )
    return _back(request)


@workspace_view(min_role=Role.OWNER)
@require_POST
def leaderboard_leave(request: WorkspaceRequest) -> HttpResponse:
    if leaderboard_opt_out(workspace=request.workspace, actor=request.user):
        messages.success(request, "The workspace is off the leaderboard.")
    return _back(request)


@workspace_view(min_role=Role.OWNER)
@require_POST
def leaderboard_reroll(request: WorkspaceRequest) -> HttpResponse:
    leaderboard_identity_reroll(workspace=request.workspace, actor=request.user)
    request.workspace.refresh_from_db()
    messages.success(request, f"Your new handle is {request.workspace.leaderboard_handle}.")
    return _back(request)


public_urlpatterns: list[URLPattern] = [
    path("leaderboard/", board, name="leaderboard_public"),
    path("leaderboard/rows/", board_rows, name="leaderboard_rows"),
    path("leaderboard/avatar/<str:seed>.svg", avatar, name="leaderboard_avatar"),
]

pages: list[URLPattern] = [
    path("leaderboard/", leaderboard, name="leaderboard"),
    path("leaderboard/card/", leaderboard_card, name="leaderboard_card"),
    path("leaderboard/join/", leaderboard_join, name="leaderboard_join"),
    path("leaderboard/leave/", leaderboard_leave, name="leaderboard_leave"),
    path("leaderboard/reroll/", leaderboard_reroll, name="leaderboard_reroll"),
]
