"""The leaderboard's pages, avatars and live channel against PostgreSQL, Redis and the real
channel layer; and the privacy check: nothing identifying in anything the board serves."""

import hashlib
import json
import time

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts.models import AuditLog
from config.asgi import application
from leaderboard.models import Participant
from leaderboard.services.board import board_rebuild, workspaces_refresh
from leaderboard.services.consent import TERMS_VERSION
from leaderboard.store import board_redis
from reputation.models import DomainDailyMetrics
from tests.leaderboard.helpers import domain_with_volume, join, workspace

DOMAINS = ("acme-sales-secret.com", "globex-private.io")


def _ranked(membership, domain: str, score: float):
    domain_with_volume(membership.workspace, domain, score=score, sent=400)
    return join(membership.workspace)


@pytest.fixture
def board(owner, stranger):
    """Two opted-in, ranked workspaces whose names, domains and emails are known."""
    owner.workspace.name = "Acme Confidential Holdings"
    owner.workspace.save()
    stranger.workspace.name = "Globex Secret Corp"
    stranger.workspace.save()
    mine = _ranked(owner, DOMAINS[0], 91.0)
    theirs = _ranked(stranger, DOMAINS[1], 77.0)
    shy = workspace("Initech Hidden Ltd")
    domain_with_volume(shy, "initech-hidden.net", score=99.0, sent=900)
    board_rebuild()
    return mine, theirs, shy


def forbidden_strings(owner, stranger, shy) -> list[str]:
    strings = [
        owner.workspace.name,
        stranger.workspace.name,
        shy.name,
        owner.user.email,
        stranger.user.email,
        owner.workspace.public_id,
        stranger.workspace.public_id,
        "initech-hidden.net",
        shy.leaderboard_handle,  # not opted in: not even its handle
        "127.0.0.1",
    ]
    for name in (*DOMAINS, "initech-hidden.net"):
        strings.append(name)
        for algo in ("md5", "sha1", "sha256"):
            strings.append(hashlib.new(algo, name.encode()).hexdigest())
    return strings


def test_the_public_board_shows_handles_and_nothing_identifying(db, board, owner, stranger):
    mine, _theirs, shy = board
    client = Client()
    page = client.get("/leaderboard/").content.decode()
    rows = client.get("/leaderboard/rows/").content.decode()
    season = client.get("/leaderboard/?view=season").content.decode()
    assert page.index(owner.workspace.leaderboard_handle) < page.index(
        stranger.workspace.leaderboard_handle
    )
    assert f"/leaderboard/avatar/{mine.avatar_seed}.svg" in page
    for body in (page, rows, season):
        for secret in forbidden_strings(owner, stranger, shy):
            assert secret not in body, secret
    # Handles are random, not derived from anything about the workspace.
    for domain in DOMAINS:
        digest = hashlib.sha256(domain.encode()).hexdigest()
        assert digest[:6] not in owner.workspace.leaderboard_handle


def test_avatars_are_drawn_from_the_seed_and_bad_seeds_are_404(db, board):
    mine, _theirs, _shy = board
    answer = Client().get(f"/leaderboard/avatar/{mine.avatar_seed}.svg")
    assert answer.status_code == 200 and answer["Content-Type"] == "image/svg+xml"
    assert answer.content.startswith(b"<svg") and b"<script" not in answer.content
    assert Client().get(f"/leaderboard/avatar/{mine.avatar_seed}.svg").content == answer.content
    assert Client().get("/leaderboard/avatar/NOT-A-SEED.svg").status_code == 404


def test_a_flushed_board_shows_a_clear_rebuilding_state_never_a_500(db, board, owner_client, owner):
    board_redis().flushdb()
    page = Client().get("/leaderboard/")
    assert page.status_code == 200 and b"being rebuilt" in page.content
    # The page asked for a rebuild (run at once here: tasks are eager in the tests).
    assert owner.workspace.leaderboard_handle.encode() in Client().get("/leaderboard/").content
    board_redis().flushdb()
    own = owner_client.get(f"/w/{owner.workspace.public_id}/leaderboard/")
    assert own.status_code == 200 and b"being rebuilt" in own.content
    board_redis().flushdb()
    dash = owner_client.get(f"/w/{owner.workspace.public_id}/")
    assert dash.status_code == 200 and b"being rebuilt" in dash.content
    board_rebuild()
    assert owner.workspace.leaderboard_handle.encode() in Client().get("/leaderboard/").content


def test_the_board_page_queries_do_not_grow_with_the_board(db, django_assert_max_num_queries):
    for n in range(30):
        ws = workspace(f"W{n}")
        domain_with_volume(ws, f"w{n}.test", score=50.0 + n, sent=300)
        join(ws)
    board_rebuild()
    client = Client()
    client.get("/leaderboard/")  # warm caches (sessions, content types)
    with django_assert_max_num_queries(2):
        body = client.get("/leaderboard/").content.decode()
    assert body.count('data-handle="Sender_') == 30


def test_the_own_page_shows_rank_neighbours_distribution_and_consent(
    db, board, owner, owner_client
):
    body = owner_client.get(f"/w/{owner.workspace.public_id}/leaderboard/").content.decode()
    assert 'data-testid="own-rank">#1<' in body
    assert 'data-testid="neighbours"' in body and 'data-testid="distribution"' in body
    assert "Leave the leaderboard" in body
    assert body.count('class="active"') == 1  # the navigation marks the Leaderboard alone
    assert 'class="active">Leaderboard<' in body


def test_an_owner_joins_with_the_checkbox_and_leaves_through_the_page(
    db, owner, owner_client, teammate_client, django_capture_on_commit_callbacks
):
    ws = owner.workspace
    domain_with_volume(ws, "acme-sales.com", score=88.0, sent=300)
    board_rebuild()
    base = f"/w/{ws.public_id}/leaderboard/"
    page = owner_client.get(base).content.decode()
    assert "I agree to these terms" in page and TERMS_VERSION in page
    owner_client.post(f"{base}join/", {"terms_version": TERMS_VERSION})  # box not ticked
    assert not Participant.objects.exists()
    assert teammate_client.post(
        f"{base}join/", {"terms_version": TERMS_VERSION, "agree": "yes"}
    ).status_code in (403, 404)
    with django_capture_on_commit_callbacks(execute=True):
        answer = owner_client.post(f"{base}join/", {"terms_version": TERMS_VERSION, "agree": "yes"})
    assert answer.status_code == 302
    assert ws.leaderboard_handle.encode() in Client().get("/leaderboard/").content
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(f"{base}leave/")
    assert ws.leaderboard_handle.encode() not in Client().get("/leaderboard/rows/").content
    assert AuditLog.objects.filter(action="leaderboard.opt_out").exists()


@pytest.mark.django_db(transaction=True)
async def test_a_score_change_reaches_a_connected_socket_within_a_second(owner, stranger):
    @database_sync_to_async
    def setup():
        domain = domain_with_volume(owner.workspace, "acme-sales.com", score=70.0, sent=300)
        join(owner.workspace)
        board_rebuild()
        return domain

    @database_sync_to_async
    def score_moves(domain):
        DomainDailyMetrics.objects.filter(domain=domain).update(sent=900)
        type(domain).objects.filter(pk=domain.pk).update(trust_score=84.0)
        return workspaces_refresh(workspace_ids=[owner.workspace_id])

    domain = await setup()
    headers = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")]
    live = WebsocketCommunicator(application, "/ws/leaderboard/", headers=headers)
    assert (await live.connect())[0]
    started = time.monotonic()
    assert await score_moves(domain) == 1
    message = await live.receive_json_from(timeout=1)
    assert time.monotonic() - started < 1.0
    assert message["event"] == "board"
    payload = message["payload"]
    assert set(payload) == {
        "handle",
        "avatar",
        "score",
        "tier",
        "badges",
        "streak_days",
        "gained",
        "rank",
    }
    assert payload["score"] == 84.0 and payload["rank"] == 1
    text = json.dumps(payload)
    for secret in ("acme-sales.com", owner.workspace.name, owner.user.email):
        assert secret not in text
    await live.disconnect()


def test_the_console_lists_participants_and_the_consent_log_and_can_take_one_off(
    db, board, staff_client, owner
):
    from leaderboard.models import ConsentRecord

    mine, _theirs, _shy = board
    listing = staff_client.get("/admin/leaderboard/participant/")
    assert listing.status_code == 200 and owner.workspace.name.encode() in listing.content
    assert staff_client.get("/admin/leaderboard/consentrecord/").status_code == 200
    staff_client.post(
        "/admin/leaderboard/participant/",
        {"action": "take_off", "_selected_action": [str(mine.pk)]},
    )
    assert not Participant.objects.filter(pk=mine.pk).exists()
    assert ConsentRecord.objects.filter(workspace=owner.workspace, action="opt_out").exists()
    assert owner.workspace.leaderboard_handle.encode() not in Client().get("/leaderboard/").content
