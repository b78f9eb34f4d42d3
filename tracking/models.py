"""Tracking models: per-campaign switches, the links a message carried, opens, clicks, and a
workspace's custom tracking domain."""

from django.db import models
from django.utils import timezone

from accounts.models import Workspace
from campaigns.models import Campaign
from sending.models import Message


class CampaignTracking(models.Model):
    """Whether a campaign's messages carry the open pixel and tracked links (no row: both on)."""

    campaign = models.OneToOneField(Campaign, on_delete=models.CASCADE, related_name="tracking")
    opens = models.BooleanField(default=True)
    clicks = models.BooleanField(default=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Tracking of {self.campaign}: opens {self.opens}, clicks {self.clicks}"


class TrackedLink(models.Model):
    """A link as it was in one sent message; a click token names (message, position), so the
    redirect can only ever go to a URL the message carried."""

    id = models.BigAutoField(primary_key=True)
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="tracked_links")
    position = models.PositiveSmallIntegerField()
    url = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "position"], name="tracked_link_unique")
        ]

    def __str__(self) -> str:
        return f"{self.message_id}#{self.position} {self.url[:80]}"


class Open(models.Model):
    """One fetch of a message's open pixel; machine fetches (proxies, scanners) are flagged."""

    id = models.BigAutoField(primary_key=True)
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="opens")
    at = models.DateTimeField(default=timezone.now)
    user_agent = models.CharField(max_length=300, blank=True)
    ip_hash = models.CharField(max_length=32, blank=True, help_text="Keyed hash; no address kept.")
    machine = models.BooleanField(default=False)
    machine_reason = models.CharField(max_length=80, blank=True)

    class Meta:
        indexes = [models.Index(fields=["message", "machine"])]
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"open of {self.message_id} at {self.at:%Y-%m-%d %H:%M:%S}"


class Click(models.Model):
    """One click on a tracked link; clicks by scanners are flagged like opens."""

    id = models.BigAutoField(primary_key=True)
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="clicks")
    link = models.ForeignKey(TrackedLink, on_delete=models.CASCADE, related_name="clicks")
    at = models.DateTimeField(default=timezone.now)
    user_agent = models.CharField(max_length=300, blank=True)
    ip_hash = models.CharField(max_length=32, blank=True)
    machine = models.BooleanField(default=False)
    machine_reason = models.CharField(max_length=80, blank=True)

    class Meta:
        indexes = [models.Index(fields=["message", "machine"])]
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"click on {self.link_id} at {self.at:%Y-%m-%d %H:%M:%S}"


class TrackingDomainState(models.TextChoices):
    PENDING = "pending", "Waiting for the DNS record"
    VERIFIED = "verified", "Verified"
    FAILED = "failed", "Check failed"


class TrackingDomain(models.Model):
    """A workspace's own hostname for tracking links, used once its CNAME points to the
    platform's tracking host."""

    workspace = models.OneToOneField(
        Workspace, on_delete=models.CASCADE, related_name="tracking_domain"
    )
    hostname = models.CharField(max_length=253, help_text="Lower-case ASCII (punycode) form.")
    state = models.CharField(
        max_length=16, choices=TrackingDomainState.choices, default=TrackingDomainState.PENDING
    )
    error = models.TextField(blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hostname"], name="tracking_domain_hostname_unique")
        ]
        indexes = [models.Index(fields=["last_checked_at"])]

    def __str__(self) -> str:
        return self.hostname
