"""The leaderboard API: the public board (paged, throttled, nothing but public fields) and a
workspace's own standing, both read from the board in Redis."""

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from openapi_spec_validator import validate
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from accounts.models import Membership, Role
from leaderboard.models import Participant
from leaderboard.ranking import RANKED_FLOOR
from leaderboard.services.board import board_rebuild
from leaderboard.store import board_redis
from tests.conftest import logged_in, token_client
from tests.factories import MembershipFactory
from tests.leaderboard.helpers import domain_with_volume, join, workspace

pytestmark = pytest.mark.django_db

LIST = "/api/v1/leaderboard/"
ME = "/api/v1/leaderboard/me/"
ENTRY_KEYS = {"rank", "handle", "avatar_url", "score", "tier", "badges", "streak_days"}
START = datetime(2026, 1, 1, tzinfo=UTC)


def ranked(name: str, score: float, *, joined: int = 0, ws=None) -> Participant:
    """An opted-in workspace past the floor with one domain scored `score`."""
    ws = ws or workspace(name)
    domain_with_volume(ws, f"{name.lower()}-mail.com", score=score, sent=RANKED_FLOOR + 50)
    return join(ws, joined_at=START + timedelta(days=joined))


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def board(owner):
    """Five ranked workspaces, the owner's third; a workspace below the floor; one that did not
    opt in (best score of all)."""
    ranked("Alpha", 95.0, joined=1)
    ranked("Bravo", 90.0, joined=2)
    ranked("Acme", 80.0, joined=3, ws=owner.workspace)
    ranked("Delta", 70.0, joined=4)
    ranked("Echo", 60.0, joined=5)
    low = workspace("Lowvolume")
    domain_with_volume(low, "lowvolume-mail.com", score=99.0, sent=RANKED_FLOOR - 1)
    join(low, joined_at=START)
    shy = workspace("Shy Corp")
    domain_with_volume(shy, "shy-corp.com", score=99.9, sent=5000)
    board_rebuild()
    return {"owner": owner, "low": low, "shy": shy}


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def handle_of(name: str) -> str:
    return Participant.objects.get(workspace__name=name).workspace.leaderboard_handle


# --- the public list -----------------------------------------------------------------------------


def test_the_board_is_public_best_first_and_only_public_fields(anon, board):
    response = anon.get(LIST)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 5
    assert body["next"] is None and body["previous"] is None
    results = body["results"]
    assert [e["rank"] for e in results] == [1, 2, 3, 4, 5]
    assert [e["score"] for e in results] == [95.0, 90.0, 80.0, 70.0, 60.0]
    assert [e["handle"] for e in results] == [
        handle_of(name) for name in ("Alpha", "Bravo", board["owner"].workspace.name)
    ] + [handle_of("Delta"), handle_of("Echo")]
    for entry in results:
        assert set(entry) == ENTRY_KEYS
        seed = Participant.objects.get(workspace__leaderboard_handle=entry["handle"]).avatar_seed
        assert entry["avatar_url"] == f"/leaderboard/avatar/{seed}.svg"
        assert entry["tier"] == "standard"
        assert isinstance(entry["badges"], list) and isinstance(entry["streak_days"], int)


def test_not_opted_in_or_below_the_floor_never_appears(anon, board):
    text = anon.get(LIST).content.decode()
    assert board["shy"].leaderboard_handle not in text
    assert board["low"].leaderboard_handle not in text
    assert "Shy Corp" not in text and "shy-corp.com" not in text


def test_equal_scores_rank_the_earlier_joiner_first(anon, db):
    later = ranked("Later", 75.0, joined=9)
    earlier = ranked("Earlier", 75.0, joined=1)
    board_rebuild()
    results = anon.get(LIST).json()["results"]
    assert [e["handle"] for e in results] == [
        earlier.workspace.leaderboard_handle,
        later.workspace.leaderboard_handle,
    ]
    assert [e["rank"] for e in results] == [1, 2]


def test_the_board_is_paged_by_offset_and_limit(anon, board):
    page = anon.get(LIST, {"offset": 2, "limit": 2}).json()
    assert page["count"] == 5
    assert [e["rank"] for e in page["results"]] == [3, 4]
    assert query(page["next"]) == {"offset": ["4"], "limit": ["2"]}
    assert query(page["previous"]) == {"limit": ["2"]}
    last = anon.get(page["next"]).json()
    assert [e["rank"] for e in last["results"]] == [5] and last["next"] is None
    assert anon.get(LIST, {"offset": 50}).json()["results"] == []
    assert len(anon.get(LIST, {"limit": 100}).json()["results"]) == 5


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": "²"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "1e3"}, "offset"),
        ({"offset": 10**12}, "offset"),
    ],
)
def test_a_bad_page_bound_is_a_clear_400(anon, board, params, field):
    response = anon.get(LIST, params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == [field]
    assert "whole number" in error["fields"][field][0]


def test_the_public_board_is_rate_limited_per_address(anon, board, monkeypatch):
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"leaderboard": "3/min"})
    codes = [anon.get(LIST).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = anon.get(LIST)
    assert response.json()["error"]["code"] == "throttled"
    assert int(response["Retry-After"]) > 0
    # Signing in does not lift the public limit.
    assert logged_in(board["owner"]).get(LIST).status_code == 429


def test_the_list_reads_no_sql_whatever_the_board_size(anon, db, django_assert_max_num_queries):
    for i in range(5):
        ranked(f"Small{i}", 50.0 + i, joined=i)
    board_rebuild()
    with django_assert_max_num_queries(0):
        assert len(anon.get(LIST).json()["results"]) == 5
    for i in range(45):
        ranked(f"Big{i}", 10.0 + i, joined=10 + i)
    board_rebuild()
    with django_assert_max_num_queries(0):
        assert len(anon.get(LIST).json()["results"]) == 50


# --- the caller's standing -----------------------------------------------------------------------


def test_a_participant_sees_its_rank_numbers_and_neighbours(owner, owner_client, board):
    body = owner_client.get(ME).json()
    participant = Participant.objects.get(workspace=owner.workspace)
    assert body["participating"] is True
    assert body["handle"] == owner.workspace.leaderboard_handle
    assert body["avatar_url"] == f"/leaderboard/avatar/{participant.avatar_seed}.svg"
    assert body["rank"] == 3
    assert body["score"] == 80.0 and body["tier"] == "standard"
    assert body["external_sent"] == RANKED_FLOOR + 50 and body["to_go"] == 0
    assert isinstance(body["badges"], list) and isinstance(body["streak_days"], int)
    assert [e["rank"] for e in body["neighbours"]] == [1, 2, 3, 4, 5]
    assert body["neighbours"][2]["handle"] == owner.workspace.leaderboard_handle
    assert all(set(e) == ENTRY_KEYS for e in body["neighbours"])
    # The same through the workspace's API token.
    assert token_client(owner).get(ME).json() == body


def test_a_participant_below_the_floor_sees_how_far_it_has_to_go(board):
    member = MembershipFactory(workspace=board["low"], role=Role.OWNER)
    body = token_client(member).get(ME).json()
    assert body["participating"] is True
    assert body["rank"] is None and body["neighbours"] == []
    assert body["score"] == 99.0
    assert body["external_sent"] == RANKED_FLOOR - 1 and body["to_go"] == 1


def test_a_workspace_that_did_not_opt_in_sees_only_its_handle(stranger, stranger_client, board):
    body = stranger_client.get(ME).json()
    assert body == {"participating": False, "handle": stranger.workspace.leaderboard_handle}


def test_me_needs_authentication(anon, board):
    response = anon.get(ME)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_session_in_several_workspaces_names_one(owner, board):
    other = Membership.objects.create(workspace=board["shy"], user=owner.user, role=Role.MEMBER)
    client = logged_in(owner)
    response = client.get(ME)
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["workspace"]
    assert client.get(ME, {"workspace": owner.workspace.public_id}).json()["rank"] == 3
    shy = client.get(ME, {"workspace": other.workspace.public_id}).json()
    assert shy == {"participating": False, "handle": board["shy"].leaderboard_handle}
    assert client.get(ME, {"workspace": "ws_unknown"}).status_code == 404
    # A token is bound to its workspace.
    assert token_client(owner).get(ME, {"workspace": other.workspace.public_id}).status_code == 404


def test_no_name_domain_or_email_leaves(owner, owner_client, anon, board):
    owner.workspace.name = "Acme Confidential Ltd"
    owner.workspace.save(update_fields=["name"])
    secrets = [
        owner.workspace.name,
        owner.workspace.public_id,
        "acme-mail.com",
        owner.user.email,
        "alpha-mail.com",
    ]
    bodies = [anon.get(LIST).content.decode(), owner_client.get(ME).content.decode()]
    for body in bodies:
        json.loads(body)
        for secret in secrets:
            assert secret not in body, secret


# --- a flushed board -----------------------------------------------------------------------------


def test_a_flushed_board_answers_503_with_retry_after(owner, owner_client, anon, board):
    board_redis().flushdb()
    for response in (anon.get(LIST), owner_client.get(ME)):
        assert response.status_code == 503
        assert response.json() == {
            "error": {
                "code": "unavailable",
                "message": "The leaderboard is being rebuilt; try again in a minute.",
                "fields": {},
            }
        }
        assert int(response["Retry-After"]) > 0
    board_rebuild()
    assert anon.get(LIST).json()["count"] == 5
    assert owner_client.get(ME).json()["rank"] == 3


# --- schema --------------------------------------------------------------------------------------


def test_the_endpoints_are_in_the_openapi_schema(anon):
    response = anon.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    validate(schema)
    listed = schema["paths"]["/api/v1/leaderboard/"]["get"]
    assert {p["name"] for p in listed["parameters"]} == {"offset", "limit"}
    assert {"200", "400", "429", "503"} <= set(listed["responses"])
    me = schema["paths"]["/api/v1/leaderboard/me/"]["get"]
    assert {"200", "401", "503"} <= set(me["responses"])
    entry = schema["components"]["schemas"]["LeaderboardEntry"]
    assert set(entry["properties"]) == ENTRY_KEYS
    standing = schema["components"]["schemas"]["LeaderboardMe"]
    assert set(standing["required"]) == {"participating", "handle"}
