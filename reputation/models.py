from django.db import models
from django.db.models import Q
from django.utils import timezone

from sending.models import Mailbox, Message, SendingDomain


class RawRecord(models.Model):
    """A KumoMTA log record exactly as posted (JSON text), stored before the hook answers 2xx."""

    id = models.BigAutoField(primary_key=True)
    record_key = models.CharField(max_length=64, unique=True)
    payload = models.TextField(help_text="The record as JSON.")
    received_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.record_key[:16]


class PendingRecord(models.Model):
    """The processing queue: a stored record not yet turned into events (claimed by deleting
    its row, so the big record rows are never rewritten)."""

    raw_record = models.OneToOneField(
        RawRecord, primary_key=True, on_delete=models.CASCADE, related_name="pending"
    )

    def __str__(self) -> str:
        return str(self.raw_record_id)


class DeadLetterRecord(models.Model):
    """A stored record that processing could not turn into events, set aside with its error so
    the rest of its batch (and every later batch) goes on; staff replay it from the console."""

    raw_record = models.OneToOneField(
        RawRecord, on_delete=models.CASCADE, related_name="dead_letter"
    )
    error = models.TextField()
    first_failed_at = models.DateTimeField(default=timezone.now)
    last_failed_at = models.DateTimeField(default=timezone.now, db_index=True)
    attempts = models.PositiveIntegerField(default=1)
    replayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_failed_at", "-id"]

    def __str__(self) -> str:
        return f"record {self.raw_record_id}"


class EventKind(models.TextChoices):
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    BOUNCE_HARD = "bounce_hard", "Hard bounce"
    BOUNCE_SOFT = "bounce_soft", "Soft bounce"
    DEFERRED = "deferred", "Deferred"
    COMPLAINT = "complaint", "Complaint"
    OPENED = "opened", "Opened"
    CLICKED = "clicked", "Clicked"
    REPLIED = "replied", "Replied"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    RESCUED = "rescued_from_spam", "Rescued from spam"
    LANDED_IN_SPAM = "landed_in_spam", "Landed in spam"
    SPAM_BLOCK = "spam_block", "Spam block"


class Event(models.Model):
    """One thing that happened to one message; idempotent on its source key."""

    id = models.BigAutoField(primary_key=True)
    domain = models.ForeignKey(SendingDomain, on_delete=models.CASCADE, related_name="events")
    mailbox = models.ForeignKey(
        Mailbox, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    recipient = models.CharField(max_length=320, blank=True)
    message_id = models.CharField(max_length=64, blank=True)
    message_kind = models.CharField(max_length=16, blank=True)
    classification = models.CharField(max_length=40, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    occurred_at = models.DateTimeField()
    source_key = models.CharField(max_length=80, unique=True)
    raw_record = models.ForeignKey(
        RawRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The outbound message this record is about, when it can be told (see processing);
    # `message_id` above is the MTA's spool id.
    outbound = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["domain", "occurred_at"]),
            models.Index(fields=["mailbox", "occurred_at"]),
            # Did this domain send to this address? A complaint or an out-of-band bounce counts
            # only then (docs/trust-score.md#whose-reports-count).
            models.Index(
                fields=["domain", "recipient", "occurred_at"],
                condition=Q(kind="sent"),
                name="event_sent_to",
            ),
        ]
        ordering = ["-occurred_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.recipient}"


class UnmatchedReport(models.Model):
    """A complaint or out-of-band bounce that matches no message the platform sent for the
    domain it names: kept for staff, never scored (anyone can mail a feedback address)."""

    class Kind(models.TextChoices):
        COMPLAINT = "complaint", "Complaint"
        BOUNCE = "bounce", "Out-of-band bounce"

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    tenant = models.CharField(
        max_length=64, blank=True, help_text="The tenant (sending domain id) the report named."
    )
    domain = models.ForeignKey(
        SendingDomain,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="unmatched_reports",
        help_text="The sending domain that tenant names, if any.",
    )
    recipient = models.CharField(max_length=320, blank=True)
    sender = models.CharField(
        max_length=320, blank=True, help_text="The original sender the report gave."
    )
    message_id = models.CharField(
        max_length=255, blank=True, help_text="The Message-ID the report claimed."
    )
    reason = models.CharField(max_length=300)
    occurred_at = models.DateTimeField(db_index=True)
    raw_record = models.ForeignKey(
        RawRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source_key = models.CharField(max_length=80, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.recipient or '(no recipient)'}"


class UndoneReception(models.Model):
    """A Reception our MTA took back: it could not queue the message it had just logged as
    received (a failed queue insert at reception), removed it from its spool and told the sender
    to try again. Processing treats that Reception as never logged, whichever of the two records
    it sees first (docs/trust-score.md#receptions-taken-back)."""

    id = models.BigAutoField(primary_key=True)
    spool_id = models.CharField(max_length=64, unique=True, help_text="The MTA's spool id.")
    domain = models.ForeignKey(
        SendingDomain, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    recipient = models.CharField(max_length=320, blank=True)
    detail = models.CharField(max_length=500, blank=True, help_text="The MTA's words.")
    occurred_at = models.DateTimeField()
    raw_record = models.ForeignKey(
        RawRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at", "-id"]

    def __str__(self) -> str:
        return self.spool_id


COUNTERS = (
    "sent",
    "delivered",
    "hard_bounces",
    "soft_bounces",
    "complaints",
    "unique_opens",
    "replies",
    "clicks",
    "spam_blocks",
    "unsubscribes",
    "warmup_sent",
)


class DailyCounters(models.Model):
    day = models.DateField()
    sent = models.PositiveIntegerField(default=0)
    delivered = models.PositiveIntegerField(default=0)
    hard_bounces = models.PositiveIntegerField(default=0)
    soft_bounces = models.PositiveIntegerField(default=0)
    complaints = models.PositiveIntegerField(default=0)
    unique_opens = models.PositiveIntegerField(default=0)
    replies = models.PositiveIntegerField(default=0)
    clicks = models.PositiveIntegerField(default=0)
    spam_blocks = models.PositiveIntegerField(default=0)
    unsubscribes = models.PositiveIntegerField(default=0)
    warmup_sent = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True


class DomainDailyMetrics(DailyCounters):
    """Per-domain per-day counters, updated by upserts (never recounted)."""

    domain = models.ForeignKey(SendingDomain, on_delete=models.CASCADE, related_name="daily")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["domain", "day"], name="domain_daily_unique")
        ]


class MailboxDailyMetrics(DailyCounters):
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="daily")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "day"], name="mailbox_daily_unique")
        ]


class SoftBounceStreak(models.Model):
    """Consecutive soft bounces to one recipient; the fifth counts as a hard bounce."""

    domain = models.ForeignKey(SendingDomain, on_delete=models.CASCADE, related_name="+")
    recipient = models.CharField(max_length=320)
    count = models.PositiveIntegerField(default=0)
    # The message whose fifth soft bounce counted as hard: its later expiry is not counted again.
    converted_message_id = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["domain", "recipient"], name="soft_streak_unique")
        ]


class ScoreHistory(models.Model):
    """A point each time a recomputation changed a domain's score or tier."""

    domain = models.ForeignKey(
        SendingDomain, on_delete=models.CASCADE, related_name="score_history"
    )
    at = models.DateTimeField(default=timezone.now)
    score = models.FloatField(null=True)
    tier = models.CharField(max_length=16)
    provisional = models.BooleanField(default=False)
    scoring_version = models.PositiveSmallIntegerField()
    metrics = models.JSONField(default=dict)

    class Meta:
        indexes = [models.Index(fields=["domain", "at"])]
        ordering = ["at", "id"]
        verbose_name_plural = "score history"


class ReputationAlert(models.Model):
    """An automatic action's condition while it holds (opened once, resolved when it clears)."""

    domain = models.ForeignKey(SendingDomain, on_delete=models.CASCADE, related_name="alerts")
    mailbox = models.ForeignKey(
        Mailbox, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts"
    )
    code = models.CharField(max_length=40)
    level = models.CharField(max_length=16)
    message = models.TextField()
    numbers = models.JSONField(default=dict)
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["domain", "code"],
                condition=Q(resolved_at__isnull=True, mailbox__isnull=True),
                name="domain_alert_open_once",
            ),
            models.UniqueConstraint(
                fields=["mailbox", "code"],
                condition=Q(resolved_at__isnull=True, mailbox__isnull=False),
                name="mailbox_alert_open_once",
            ),
        ]
        ordering = ["-opened_at"]

    def __str__(self) -> str:
        return f"{self.code} on {self.mailbox or self.domain}"


class EgressSource(models.Model):
    """An IP the operator leases, with its EHLO name and warm-up start."""

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        STANDBY = "standby", "Standby"
        PULLED = "pulled", "Pulled (weight 0)"

    name = models.SlugField(max_length=64, unique=True)
    source_address = models.GenericIPAddressField(unique=True)
    ehlo_domain = models.CharField(max_length=253)
    warmup_started_on = models.DateField(default=timezone.localdate)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    state_reason = models.TextField(blank=True)
    state_changed_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.source_address})"


class Pool(models.Model):
    """A named set of egress sources; the names are the tiers (quarantine is always empty)."""

    class Name(models.TextChoices):
        PREMIUM = "premium", "Premium (external, best)"
        STANDARD = "standard", "Standard (external)"
        REHAB = "rehab", "Rehabilitation (internal warming only)"
        QUARANTINE = "quarantine", "Quarantine (no sources: mail is held)"

    name = models.CharField(max_length=16, choices=Name.choices, unique=True)
    sources = models.ManyToManyField(EgressSource, through="PoolMembership", related_name="pools")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PoolMembership(models.Model):
    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="memberships")
    source = models.ForeignKey(EgressSource, on_delete=models.CASCADE, related_name="memberships")
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pool", "source"], name="pool_source_unique")
        ]

    def __str__(self) -> str:
        return f"{self.source.name} in {self.pool.name}"


class PoolMapExport(models.Model):
    """One full export of the tenant->pool map to Redis (what the MTA reads)."""

    version = models.PositiveBigIntegerField()
    exported_at = models.DateTimeField(default=timezone.now)
    tenants = models.PositiveIntegerField()
    pools = models.JSONField(default=dict)
    duration_ms = models.PositiveIntegerField()

    class Meta:
        ordering = ["-exported_at", "-id"]

    def __str__(self) -> str:
        return f"v{self.version} ({self.tenants} tenants)"


class BlocklistCheck(models.Model):
    """One DNSBL answer for a source IP or a customer domain (the history the console shows)."""

    class Kind(models.TextChoices):
        IP = "ip", "Source IP"
        DOMAIN = "domain", "Sending domain"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    target = models.CharField(max_length=253)
    zone = models.CharField(max_length=253)
    listed = models.BooleanField(default=False)
    answer = models.CharField(max_length=120, blank=True)
    error = models.CharField(max_length=200, blank=True)
    checked_at = models.DateTimeField(default=timezone.now, db_index=True)
    source = models.ForeignKey(
        EgressSource, null=True, blank=True, on_delete=models.CASCADE, related_name="checks"
    )
    domain = models.ForeignKey(
        SendingDomain, null=True, blank=True, on_delete=models.CASCADE, related_name="checks"
    )

    class Meta:
        ordering = ["-checked_at", "-id"]
        indexes = [models.Index(fields=["target", "checked_at"])]

    def __str__(self) -> str:
        state = "LISTED" if self.listed else ("error" if self.error else "clean")
        return f"{self.target} @ {self.zone}: {state}"
