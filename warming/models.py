"""A mailbox's warm-up settings (the ramp itself is computed: warming/schedule.py)."""

from datetime import time

from django.db import models
from django.db.models import Q
from django.utils import timezone

from sending.models import Mailbox, MailServers, Message

REPLY_RATE_RANGE = (15, 30)
DEFAULT_REPLY_RATE = 25


class WarmupSettings(models.Model):
    """How one mailbox warms: when it started, its target, reply rate and working hours."""

    mailbox = models.OneToOneField(Mailbox, on_delete=models.CASCADE, related_name="warmup")
    started_on = models.DateField(default=timezone.localdate)
    target = models.PositiveSmallIntegerField(
        default=40, help_text="Warm-up messages a day once ramped (at most 50)."
    )
    reply_rate = models.PositiveSmallIntegerField(
        default=DEFAULT_REPLY_RATE,
        help_text="Percent of received warm-up messages answered (15 to 30).",
    )
    weekdays_only = models.BooleanField(default=False)
    prewarmed = models.BooleanField(
        default=False, help_text="Imported with a sending history: ramps faster, capped at 30."
    )
    paused = models.BooleanField(default=False)
    paused_reason = models.CharField(max_length=200, blank=True)
    tag = models.CharField(max_length=40, blank=True, help_text="A label of yours, to filter by.")
    window_start = models.TimeField(default=time(9))
    window_end = models.TimeField(default=time(17))
    time_zone = models.CharField(max_length=64, default="UTC")
    updated_at = models.DateTimeField(default=timezone.now)
    # Set by the engagement agent when it cannot log in to the mailbox (paused says so until a
    # retry at `agent_retry_at` succeeds; the customer's own pause is separate).
    agent_error = models.CharField(max_length=300, blank=True)
    agent_failures = models.PositiveSmallIntegerField(default=0)
    agent_retry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "warm-up settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    reply_rate__gte=REPLY_RATE_RANGE[0], reply_rate__lte=REPLY_RATE_RANGE[1]
                ),
                name="warmup_reply_rate_range",
            ),
            models.CheckConstraint(
                condition=Q(target__gte=1, target__lte=50), name="warmup_target_range"
            ),
            models.CheckConstraint(
                condition=Q(window_start__lt=models.F("window_end")), name="warmup_window_order"
            ),
        ]

    def __str__(self) -> str:
        return f"warm-up of {self.mailbox}"


class GoldenSeed(MailServers):
    """An operator-owned mailbox on a major provider: scarce, trusted, with a daily budget. It
    sends its messages through its own SMTP server and the agent reads it over IMAP."""

    class Provider(models.TextChoices):
        GOOGLE = "google", "Google"
        MICROSOFT = "microsoft", "Microsoft"
        OTHER = "other", "Other"

    address = models.EmailField(unique=True)
    display_name = models.CharField(max_length=120, blank=True)
    provider = models.CharField(max_length=16, choices=Provider.choices)
    daily_budget = models.PositiveIntegerField(
        default=20, help_text="Warm-up messages it may send and receive a day."
    )
    active = models.BooleanField(default=True)
    notes = models.TextField(blank=True)
    agent_error = models.CharField(max_length=300, blank=True)
    agent_retry_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["address"]

    def __str__(self) -> str:
        return self.address


class Step(models.TextChoices):
    """Where a warm-up message is on its way: sent, then handled on the recipient's side."""

    PLANNED = "planned", "Planned"  # not handed over yet
    FIND = "find", "To find"  # sent; the agent looks for it at `engage_at`
    READ = "read", "To read"  # found (rescued if needed); read, flagged, answered, filed next
    DONE = "done", "Done"
    MISSING = "missing", "Never arrived"  # not found after every retry
    FAILED = "failed", "Not sent"  # the sending side refused it or gave up
    UNREAD = "unread", "Not read"  # a recipient the agent cannot log in to (no IMAP login)


class Placement(models.TextChoices):
    INBOX = "inbox", "Inbox"
    SPAM = "spam", "Spam"
    MISSING = "missing", "Missing"


class WarmupSend(models.Model):
    """One planned warm-up message of a day: who writes to whom, when, in which cluster; then
    what happened to it in the recipient's mailbox."""

    day = models.DateField()
    sender = models.ForeignKey(Mailbox, null=True, on_delete=models.CASCADE, related_name="+")
    sender_seed = models.ForeignKey(
        GoldenSeed, null=True, on_delete=models.CASCADE, related_name="+"
    )
    recipient = models.ForeignKey(Mailbox, null=True, on_delete=models.CASCADE, related_name="+")
    recipient_seed = models.ForeignKey(
        GoldenSeed, null=True, on_delete=models.CASCADE, related_name="+"
    )
    cluster = models.CharField(max_length=16)
    send_at = models.DateTimeField()
    # The code in the message's X-Warmup-Tag header and body, by which the agent finds it.
    code = models.CharField(max_length=16, blank=True, db_index=True)
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subject = models.CharField(max_length=300, blank=True)
    # The Message-ID it went out with (a seed's messages have no Message row).
    sent_message_id = models.CharField(max_length=255, blank=True)
    # A reply of the recipient's, in the thread of `parent`.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies"
    )
    will_reply = models.BooleanField(default=False)
    step = models.CharField(max_length=12, choices=Step.choices, default=Step.PLANNED)
    engage_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    placement = models.CharField(max_length=8, choices=Placement.choices, blank=True)
    found_in = models.CharField(max_length=120, blank=True)
    rescued = models.BooleanField(default=False)
    read_at = models.DateTimeField(null=True, blank=True)
    flagged = models.BooleanField(default=False)
    replied_at = models.DateTimeField(null=True, blank=True)
    filed_at = models.DateTimeField(null=True, blank=True)
    by_hand = models.BooleanField(default=False, help_text="Handled on the Warming tasks page.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["day"]),
            models.Index(fields=["send_at"]),
            models.Index(fields=["step", "engage_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(sender__isnull=False) ^ Q(sender_seed__isnull=False),
                name="warmup_send_one_sender",
            ),
            models.CheckConstraint(
                condition=Q(recipient__isnull=False) ^ Q(recipient_seed__isnull=False),
                name="warmup_send_one_recipient",
            ),
        ]

    def __str__(self) -> str:
        sender = self.sender or self.sender_seed
        return f"{self.day}: {sender} -> {self.recipient or self.recipient_seed}"


class WarmupDay(models.Model):
    """A day whose plan is made: the planner runs once per day, however often its tick runs."""

    day = models.DateField(unique=True)
    planned_at = models.DateTimeField(default=timezone.now)
    sends = models.PositiveIntegerField(default=0)
    unplaced = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-day"]

    def __str__(self) -> str:
        return f"{self.day}: {self.sends} warm-up messages"
