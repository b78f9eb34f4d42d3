"""Who takes part in the leaderboard (with their consent), what they agreed to, and the board
numbers last computed for them. Nothing here names a workspace to the public: the board shows
the workspace's random handle and an avatar drawn from a random seed."""

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import Workspace


def avatar_seed_new() -> str:
    return secrets.token_hex(8)


class Participant(models.Model):
    """A workspace that opted in. Opting out deletes the row (the consent log keeps the fact)."""

    workspace = models.OneToOneField(
        Workspace, on_delete=models.CASCADE, related_name="leaderboard_participant"
    )
    joined_at = models.DateTimeField(default=timezone.now)
    terms_version = models.CharField(max_length=20)
    consented_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    avatar_seed = models.CharField(max_length=32, default=avatar_seed_new)
    board_score = models.FloatField(null=True, blank=True)
    tier = models.CharField(max_length=16, blank=True)
    external_sent = models.PositiveIntegerField(default=0, help_text="Campaign messages, window.")
    ranked = models.BooleanField(default=False)
    streak_days = models.PositiveIntegerField(default=0)
    badges = models.JSONField(default=list, blank=True)
    season = models.CharField(max_length=7, blank=True, help_text="YYYY-MM")
    season_start_score = models.FloatField(null=True, blank=True)
    computed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["ranked", "-board_score"])]

    def __str__(self) -> str:
        return f"{self.workspace.leaderboard_handle} ({self.workspace_id})"


class ConsentAction(models.TextChoices):
    OPT_IN = "opt_in", "Opted in"
    OPT_OUT = "opt_out", "Opted out"


class ConsentRecord(models.Model):
    """Every opt-in and opt-out: who, when, and which terms (append-only)."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="leaderboard_consents"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=8, choices=ConsentAction.choices)
    terms_version = models.CharField(max_length=20)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["workspace", "-at"])]
