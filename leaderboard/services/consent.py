"""Taking part in the leaderboard: opt in (an owner, with the terms of the day), opt out (at
once: Redis first, then the pages), and a new random handle and avatar."""

from functools import partial

from django.db import transaction

from accounts.models import Role, User, Workspace
from accounts.services import audit_log_record, leaderboard_handle_new
from config.errors import ApplicationError
from leaderboard.models import ConsentAction, ConsentRecord, Participant, avatar_seed_new
from leaderboard.services.board import board_remove, board_write, push_removed, workspaces_refresh

# Bump the version whenever TERMS change: a new opt-in then needs the new text agreed to.
TERMS_VERSION = "2026-12"
TERMS = (
    "The workspace appears on the public leaderboard under its random handle and a generated "
    "avatar, with its board score, tier, streak and badges.",
    "Nothing else is shown: never a domain, address, IP, company or user name.",
    "It is ranked once it has sent 200 campaign messages in the scoring window.",
    "An owner can take it off the board at any time; it disappears at once.",
)


def _owner_only(workspace: Workspace, actor: User | None) -> None:
    if actor is None:
        return
    if not workspace.memberships.filter(user=actor, role=Role.OWNER).exists():
        raise ApplicationError(
            "Only an owner of the workspace can change its leaderboard consent.",
            code="forbidden",
            status=403,
        )


def leaderboard_opt_in(
    *, workspace: Workspace, actor: User | None, terms_version: str
) -> Participant:
    """Put the workspace on the board; `terms_version` is the version the owner was shown."""
    _owner_only(workspace, actor)
    if terms_version != TERMS_VERSION:
        raise ApplicationError(
            "The leaderboard terms have changed since the page was opened: read them again.",
            code="stale_terms",
            fields={"terms_version": ["Not the current terms."]},
        )
    with transaction.atomic():
        participant, created = Participant.objects.get_or_create(
            workspace=workspace,
            defaults={"terms_version": TERMS_VERSION, "consented_by": actor},
        )
        if not created:
            return participant
        ConsentRecord.objects.create(
            workspace=workspace,
            user=actor,
            action=ConsentAction.OPT_IN,
            terms_version=TERMS_VERSION,
        )
        audit_log_record(
            action="leaderboard.opt_in",
            actor=actor,
            obj=participant,
            workspace=workspace,
            after={"terms_version": TERMS_VERSION},
        )
        transaction.on_commit(partial(workspaces_refresh, workspace_ids=[workspace.pk]))
    return participant


def leaderboard_opt_out(*, workspace: Workspace, actor: User | None) -> bool:
    """Take the workspace off the board at once; False when it was not on it."""
    _owner_only(workspace, actor)
    with transaction.atomic():
        participant = Participant.objects.select_for_update().filter(workspace=workspace).first()
        if participant is None:
            return False
        ConsentRecord.objects.create(
            workspace=workspace,
            user=actor,
            action=ConsentAction.OPT_OUT,
            terms_version=participant.terms_version,
        )
        audit_log_record(
            action="leaderboard.opt_out", actor=actor, obj=participant, workspace=workspace
        )
        participant_id = participant.pk
        participant.delete()
        # Redis at once (the row is gone for every reader once this commits).
        board_remove(participant_id)
        transaction.on_commit(partial(push_removed, workspace.leaderboard_handle))
    return True


def leaderboard_identity_reroll(*, workspace: Workspace, actor: User | None) -> Participant | None:
    """A new random handle and avatar (the old ones are gone from the board at once)."""
    _owner_only(workspace, actor)
    with transaction.atomic():
        old = workspace.leaderboard_handle
        workspace.leaderboard_handle = leaderboard_handle_new()
        workspace.save(update_fields=["leaderboard_handle"])
        participant = Participant.objects.filter(workspace=workspace).first()
        if participant is not None:
            participant.avatar_seed = avatar_seed_new()
            participant.save(update_fields=["avatar_seed"])
            participant.workspace = workspace
        audit_log_record(
            action="leaderboard.reroll",
            actor=actor,
            workspace=workspace,
            before={"handle": old},
            after={"handle": workspace.leaderboard_handle},
        )
        if participant is not None:
            transaction.on_commit(partial(board_write, [participant]))
            transaction.on_commit(partial(push_removed, old))
    return participant
