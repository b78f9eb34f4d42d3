"""API: the public leaderboard (`/api/v1/leaderboard/`) and the caller's own standing
(`/api/v1/leaderboard/me/`).

The board is read from Redis (no SQL for the public list). An entry carries only what the
board shows in public: rank, random handle, avatar, score, tier, badges and streak; never a
workspace's name, id, domains or people. While Redis holds no complete board (flushed or
restarted, until the periodic rebuild) both endpoints answer 503 with Retry-After."""

import re
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param
from rest_framework.views import APIView

from accounts.api.views import api_membership_for_write
from config.throttling import AnonRateThrottle
from leaderboard.models import Participant
from leaderboard.ranking import RANKED_FLOOR, to_go
from leaderboard.selectors import (
    BoardUnavailable,
    Entry,
    board_page,
    board_size,
    board_standing,
    participant_get,
)

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
MAX_OFFSET = 10**9
AROUND = 2  # neighbours above and below the caller
RETRY_AFTER_SECONDS = 60
_WHOLE = re.compile(r"[0-9]{1,10}")
ERROR_REF = {"$ref": "#/components/schemas/Error"}
REBUILDING = OpenApiResponse(
    response=ERROR_REF,
    description="The board is being rebuilt (Redis holds no complete board); retry after the "
    "`Retry-After` header's seconds.",
)


class BoardRebuilding(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The leaderboard is being rebuilt; try again in a minute."
    default_code = "unavailable"
    wait = RETRY_AFTER_SECONDS  # DRF's exception handler turns it into Retry-After


class LeaderboardThrottle(AnonRateThrottle):
    """Per client address for everyone: the list is public and needs no authentication."""

    scope = "leaderboard"


def avatar_url(seed: str) -> str:
    return f"/leaderboard/avatar/{seed}.svg"


def public_entry(entry: Entry) -> dict[str, Any]:
    """A board entry as the API shows it: only these keys ever leave."""
    return {
        "rank": entry["rank"],
        "handle": entry["handle"],
        "avatar_url": avatar_url(entry["avatar"]),
        "score": entry["score"],
        "tier": entry["tier"],
        "badges": list(entry["badges"]),
        "streak_days": entry["streak_days"],
    }


# --- serializers (the documented shapes) ---------------------------------------------------------


class LeaderboardEntrySerializer(serializers.Serializer):
    rank = serializers.IntegerField(help_text="1 is the top of the board.")
    handle = serializers.CharField(help_text="The workspace's random public handle.")
    avatar_url = serializers.CharField(help_text="Path of the avatar image (SVG).")
    score = serializers.FloatField(help_text="Board score, 0-100.")
    tier = serializers.CharField(
        help_text="Best tier of the workspace's live domains: premium, standard, rehab, "
        "quarantine, or empty."
    )
    badges = serializers.ListField(child=serializers.CharField(), help_text="Badge codes.")
    streak_days = serializers.IntegerField(help_text="Days of sending without trouble.")


class LeaderboardPageSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="How many workspaces are ranked.")
    next = serializers.CharField(allow_null=True, help_text="The next page's URL, if any.")
    previous = serializers.CharField(allow_null=True, help_text="The previous page's URL, if any.")
    results = LeaderboardEntrySerializer(many=True)


class LeaderboardMeSerializer(serializers.Serializer):
    """Everything but `participating` and `handle` is left out when not participating."""

    participating = serializers.BooleanField(help_text="Whether the workspace opted in.")
    handle = serializers.CharField(help_text="The workspace's random public handle.")
    avatar_url = serializers.CharField(required=False)
    rank = serializers.IntegerField(
        required=False, allow_null=True, help_text="Null while not ranked."
    )
    score = serializers.FloatField(
        required=False, allow_null=True, help_text="Null while no scored domain sent anything."
    )
    tier = serializers.CharField(required=False, allow_blank=True)
    badges = serializers.ListField(child=serializers.CharField(), required=False)
    streak_days = serializers.IntegerField(required=False)
    external_sent = serializers.IntegerField(
        required=False, help_text="Campaign (not warm-up) messages sent in the window."
    )
    to_go = serializers.IntegerField(
        required=False,
        help_text=f"Campaign messages still needed to be ranked ({RANKED_FLOOR} in the window).",
    )
    neighbours = LeaderboardEntrySerializer(
        many=True,
        required=False,
        help_text="The ranked entries around the workspace, best first, its own included "
        "(empty while not ranked).",
    )


# --- views ---------------------------------------------------------------------------------------


def _bounded(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not _WHOLE.fullmatch(raw) or not low <= int(raw) <= high:
        raise serializers.ValidationError({name: [f"Give a whole number from {low} to {high}."]})
    return int(raw)


def _page_link(request: Request, offset: int, limit: int) -> str:
    url = request.build_absolute_uri()
    url = replace_query_param(url, "limit", limit)
    if offset <= 0:
        return remove_query_param(url, "offset")
    return replace_query_param(url, "offset", offset)


class LeaderboardView(APIView):
    """The public board, best first. No authentication; limited per client address."""

    authentication_classes: list[Any] = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = [LeaderboardThrottle]

    @extend_schema(
        summary="The public leaderboard",
        description="Ranked workspaces by board score, best first (equal scores: the earlier "
        "to join first). Public: no authentication. Only opted-in workspaces past the ranking "
        "floor appear, by their random handle.",
        auth=[],
        parameters=[
            OpenApiParameter(
                "offset",
                {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
                description="How many ranked entries to skip (0: from the top).",
            ),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                description=f"Entries per page (default {DEFAULT_LIMIT}, at most {MAX_LIMIT}).",
            ),
        ],
        responses={200: LeaderboardPageSerializer, 503: REBUILDING},
    )
    def get(self, request: Request) -> Response:
        offset = _bounded(request, "offset", 0, 0, MAX_OFFSET)
        limit = _bounded(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        try:
            count = board_size()
            entries = board_page(offset=offset, limit=limit)
        except BoardUnavailable as error:
            raise BoardRebuilding from error
        return Response(
            {
                "count": count,
                "next": _page_link(request, offset + limit, limit)
                if offset + limit < count
                else None,
                "previous": _page_link(request, max(0, offset - limit), limit)
                if offset > 0
                else None,
                "results": [public_entry(entry) for entry in entries],
            }
        )


def _own_numbers(participant: Participant, entry: Entry | None) -> dict[str, Any]:
    """The workspace's public numbers: its board entry, or (not yet on the board) its row."""
    if entry is not None:
        return {
            "score": entry["score"],
            "tier": entry["tier"],
            "badges": list(entry["badges"]),
            "streak_days": entry["streak_days"],
        }
    return {
        "score": participant.board_score,
        "tier": participant.tier,
        "badges": list(participant.badges),
        "streak_days": participant.streak_days,
    }


class LeaderboardMeView(APIView):
    """The standing of the request's workspace."""

    @extend_schema(
        summary="Your workspace's standing on the leaderboard",
        description="Rank, numbers and neighbours of your workspace (a token's own; with a "
        "browser session in several workspaces, give `workspace`). A workspace that has not "
        "opted in gets `participating: false` and its handle only.",
        parameters=[
            OpenApiParameter(
                "workspace",
                OpenApiTypes.STR,
                description="The workspace's public id (needed with a session in several).",
            )
        ],
        responses={200: LeaderboardMeSerializer, 503: REBUILDING},
    )
    def get(self, request: Request) -> Response:
        requested = request.query_params.get("workspace", "")[:40] or None
        workspace = api_membership_for_write(request, requested).workspace
        participant = participant_get(workspace=workspace)
        if participant is None:
            return Response({"participating": False, "handle": workspace.leaderboard_handle})
        try:
            standing = board_standing(participant=participant, around=AROUND)
        except BoardUnavailable as error:
            raise BoardRebuilding from error
        return Response(
            {
                "participating": True,
                "handle": workspace.leaderboard_handle,
                "avatar_url": avatar_url(participant.avatar_seed),
                "rank": standing.rank,
                **_own_numbers(participant, standing.entry),
                "external_sent": participant.external_sent,
                "to_go": to_go(participant.external_sent),
                "neighbours": [public_entry(entry) for entry in standing.neighbours],
            }
        )
