"""The board against PostgreSQL and the real Redis: consent, computing, ranks, the floor,
re-rolls, score changes reaching the board, a flushed Redis and its rebuild."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models.functions import Round
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import AuditLog
from config.errors import ApplicationError
from leaderboard.models import ConsentRecord, Participant
from leaderboard.ranking import RANKED_FLOOR
from leaderboard.selectors import (
    BoardUnavailable,
    board_distribution,
    board_page,
    board_size,
    board_standing,
    season_most_improved,
)
from leaderboard.services.board import board_rebuild, board_write, workspaces_refresh
from leaderboard.services.consent import (
    TERMS_VERSION,
    leaderboard_identity_reroll,
    leaderboard_opt_in,
    leaderboard_opt_out,
)
from leaderboard.store import board_redis
from reputation.core.scores import scores_recompute
from reputation.models import DomainDailyMetrics
from tests.leaderboard.helpers import domain_with_volume, join, workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def built():
    board_rebuild()


def test_an_owner_opts_in_with_the_current_terms_and_is_ranked_past_the_floor(
    owner, django_capture_on_commit_callbacks
):
    ws = owner.workspace
    domain_with_volume(ws, "acme-sales.com", score=91.0, sent=300, warmup=50)
    domain_with_volume(ws, "acme-mail.com", score=61.0, sent=100, warmup=100)
    board_rebuild()
    with django_capture_on_commit_callbacks(execute=True):
        participant = leaderboard_opt_in(
            workspace=ws, actor=owner.user, terms_version=TERMS_VERSION
        )
    participant.refresh_from_db()
    assert participant.board_score == 83.5  # (91 * 300 + 61 * 100) / 400
    assert participant.external_sent == 250 and participant.ranked
    assert participant.tier == "standard"
    record = ConsentRecord.objects.get(workspace=ws)
    assert (record.user, record.action, record.terms_version) == (
        owner.user,
        "opt_in",
        TERMS_VERSION,
    )
    assert AuditLog.objects.filter(action="leaderboard.opt_in", workspace=ws).exists()
    [top] = board_page()
    assert top["handle"] == ws.leaderboard_handle and top["rank"] == 1
    assert top["score"] == 83.5 and "first_domain" in top["badges"]


def test_stale_terms_or_a_member_cannot_opt_in(owner, teammate):
    with pytest.raises(ApplicationError, match="terms have changed"):
        leaderboard_opt_in(workspace=owner.workspace, actor=owner.user, terms_version="2020-01")
    with pytest.raises(ApplicationError, match="Only an owner"):
        leaderboard_opt_in(
            workspace=owner.workspace, actor=teammate.user, terms_version=TERMS_VERSION
        )
    assert not Participant.objects.exists() and not ConsentRecord.objects.exists()


def test_below_the_floor_a_participant_is_not_ranked_and_warm_up_does_not_count(built):
    ws = workspace()
    domain_with_volume(ws, "a.test", score=99.0, sent=RANKED_FLOOR + 500, warmup=501)
    participant = join(ws)
    workspaces_refresh(workspace_ids=[ws.pk])
    participant.refresh_from_db()
    assert participant.external_sent == RANKED_FLOOR - 1 and not participant.ranked
    standing = board_standing(participant=participant)
    assert standing.rank is None and standing.entry["score"] == 99.0
    assert board_size() == 0


def test_workspaces_that_did_not_opt_in_are_never_on_the_board(built):
    shy = workspace("Shy")
    domain_with_volume(shy, "shy.test", score=95.0, sent=900)
    joined = workspace("Joined")
    domain_with_volume(joined, "joined.test", score=70.0, sent=900)
    join(joined)
    board_rebuild()
    assert [e["handle"] for e in board_page()] == [joined.leaderboard_handle]
    workspaces_refresh(workspace_ids=[shy.pk, joined.pk])
    assert board_size() == 1


def test_opting_out_removes_it_from_redis_at_once_and_records_it(owner, built):
    ws = owner.workspace
    domain_with_volume(ws, "acme-sales.com", score=80.0, sent=400)
    participant = join(ws)
    workspaces_refresh(workspace_ids=[ws.pk])
    assert board_size() == 1
    assert leaderboard_opt_out(workspace=ws, actor=owner.user) is True
    # Before any rebuild: the sorted set and the entries no longer hold it.
    assert board_size() == 0
    assert board_redis().hget("tg:leaderboard:entries", str(participant.pk)) is None
    assert not Participant.objects.filter(workspace=ws).exists()
    assert ConsentRecord.objects.get(workspace=ws).action == "opt_out"
    assert leaderboard_opt_out(workspace=ws, actor=owner.user) is False
    board_rebuild()
    assert board_page() == []


def test_a_reroll_gives_a_new_handle_and_avatar_and_the_old_ones_leave_the_board(
    owner, built, django_capture_on_commit_callbacks
):
    ws = owner.workspace
    domain_with_volume(ws, "acme-sales.com", score=80.0, sent=400)
    participant = join(ws)
    workspaces_refresh(workspace_ids=[ws.pk])
    old_handle, old_seed = ws.leaderboard_handle, participant.avatar_seed
    with django_capture_on_commit_callbacks(execute=True):
        leaderboard_identity_reroll(workspace=ws, actor=owner.user)
    ws.refresh_from_db()
    participant.refresh_from_db()
    assert ws.leaderboard_handle != old_handle and ws.leaderboard_handle.startswith("Sender_")
    assert participant.avatar_seed != old_seed
    [entry] = board_page()
    assert (entry["handle"], entry["avatar"]) == (ws.leaderboard_handle, participant.avatar_seed)


def test_a_score_change_reaches_the_board_through_the_recomputation(
    owner, built, django_capture_on_commit_callbacks
):
    ws = owner.workspace
    domain = domain_with_volume(ws, "acme-sales.com", score=None, sent=400)
    join(ws)
    workspaces_refresh(workspace_ids=[ws.pk])
    assert board_size() == 0  # no score yet
    DomainDailyMetrics.objects.filter(domain=domain).update(delivered=400, unique_opens=120)
    with django_capture_on_commit_callbacks(execute=True):
        changes = scores_recompute(domain_ids=[domain.pk])
    assert domain.pk in changes  # a real score now; the refresh task ran on commit (eagerly)
    domain.refresh_from_db()
    [entry] = board_page()
    assert entry["score"] == round(domain.trust_score, 2)


def test_a_flushed_redis_says_so_and_the_rebuild_restores_the_board(owner, built):
    ws = owner.workspace
    domain_with_volume(ws, "acme-sales.com", score=80.0, sent=400)
    participant = join(ws)
    board_rebuild()
    assert board_size() == 1
    board_redis().flushdb()
    with pytest.raises(BoardUnavailable):
        board_page()
    with pytest.raises(BoardUnavailable):
        board_standing(participant=participant)
    assert board_rebuild() == 1
    assert board_page()[0]["handle"] == ws.leaderboard_handle


def test_neighbours_distribution_and_season(built):
    now = datetime.now(UTC)
    parts = []
    for n, score in enumerate([95.0, 90.0, 85.0, 80.0, 75.0, 40.0]):
        ws = workspace(f"W{n}")
        domain_with_volume(ws, f"w{n}.test", score=score, sent=300)
        parts.append(join(ws, joined_at=now - timedelta(days=10 - n)))
    board_rebuild()
    standing = board_standing(participant=parts[3])
    assert standing.rank == 4
    assert [e["rank"] for e in standing.neighbours] == [2, 3, 4, 5, 6]
    assert board_distribution() == [0, 0, 0, 0, 1, 0, 0, 1, 2, 2]
    Participant.objects.filter(pk=parts[5].pk).update(season_start_score=30.0)
    Participant.objects.filter(pk=parts[0].pk).update(season_start_score=94.0)
    improved = season_most_improved()
    assert [(e["handle"], e["gained"]) for e in improved] == [
        (parts[5].workspace.leaderboard_handle, 10.0),
        (parts[0].workspace.leaderboard_handle, 1.0),
    ]


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([55.0, 70.0, 70.004, 82.5, 99.99]),  # ties on purpose
            st.integers(min_value=0, max_value=5),  # days ago it joined (ties too)
        ),
        min_size=1,
        max_size=12,
    )
)
def test_ranks_match_a_sql_reference(db, rows):
    Participant.objects.all().delete()
    base = datetime(2026, 11, 1, tzinfo=UTC)
    made = []
    for index, (score, days) in enumerate(rows):
        ws = workspace(f"R{index}")
        made.append(
            Participant.objects.create(
                workspace=ws,
                terms_version="test",
                joined_at=base + timedelta(days=days),
                board_score=score,
                ranked=True,
            )
        )
    board_redis().delete("tg:leaderboard:ranks")
    board_write(made)
    board_redis().set("tg:leaderboard:built", "test")
    expected = [
        p.workspace.leaderboard_handle
        for p in sorted(made, key=lambda p: (-round(p.board_score, 2), p.joined_at))
    ]
    got = [e["handle"] for e in board_page(limit=100)]
    # Equal (score, joined) pairs may come in either order; everything else must match.
    assert len(got) == len(expected)
    key = {p.workspace.leaderboard_handle: (-round(p.board_score, 2), p.joined_at) for p in made}
    assert [key[h] for h in got] == [key[h] for h in expected]
    sql = list(
        Participant.objects.filter(ranked=True)
        .annotate(points=Round("board_score", 2))
        .order_by("-points", "joined_at")
        .values_list("workspace__leaderboard_handle", flat=True)
    )
    assert [key[h] for h in got] == [key[h] for h in sql]
