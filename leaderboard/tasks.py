"""Celery adapters for the leaderboard."""

from celery import shared_task

from leaderboard.services.board import board_rebuild, workspaces_refresh


@shared_task
def leaderboard_rebuild() -> int:
    """Recompute every participant and replace the board in Redis (periodic)."""
    return board_rebuild()


@shared_task
def leaderboard_workspaces_refresh(workspace_ids: list[int]) -> int:
    """Recompute these workspaces' board numbers after a score change and push them live."""
    return workspaces_refresh(workspace_ids=workspace_ids)
