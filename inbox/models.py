"""Replies read from the sending mailboxes over IMAP, their labels, and each mailbox's poll
state."""

import secrets

from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import PUBLIC_ID_ALPHABET, Workspace
from campaigns.models import Campaign, CampaignLead, Lead
from sending.models import Mailbox, Message


def reply_public_id_new() -> str:
    return "rpl_" + "".join(secrets.choice(PUBLIC_ID_ALPHABET) for _ in range(16))


class ReplyKind(models.TextChoices):
    HUMAN = "human", "Reply"
    AUTO_REPLY = "auto_reply", "Automatic reply"
    OUT_OF_OFFICE = "out_of_office", "Out of office"
    BOUNCE = "bounce", "Delivery failure"
    UNSUBSCRIBE = "unsubscribe", "Unsubscribe request"


class SystemLabel(models.TextChoices):
    INTERESTED = "interested", "Interested"
    NOT_INTERESTED = "not_interested", "Not interested"
    MEETING_BOOKED = "meeting_booked", "Meeting booked"
    OUT_OF_OFFICE = "out_of_office", "Out of office"
    WRONG_PERSON = "wrong_person", "Wrong person"


class ReplyLabel(models.Model):
    """A label a customer puts on replies: one of the built-in ones (`system` set) or their own."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="reply_labels")
    name = models.CharField(max_length=60)
    system = models.CharField(max_length=20, choices=SystemLabel.choices, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="reply_label_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


class Reply(models.Model):
    """One message found in a sending mailbox that answers something the platform sent."""

    id = models.BigAutoField(primary_key=True)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="replies")
    public_id = models.CharField(max_length=32, unique=True, default=reply_public_id_new)
    mailbox = models.ForeignKey(
        Mailbox, null=True, blank=True, on_delete=models.SET_NULL, related_name="replies"
    )
    # What it answers (matched by In-Reply-To / References), as far as that is known.
    in_reply_to = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="replies"
    )
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="replies"
    )
    campaign_lead = models.ForeignKey(
        CampaignLead, null=True, blank=True, on_delete=models.SET_NULL, related_name="replies"
    )
    lead = models.ForeignKey(
        Lead, null=True, blank=True, on_delete=models.SET_NULL, related_name="replies"
    )
    kind = models.CharField(max_length=16, choices=ReplyKind.choices, default=ReplyKind.HUMAN)
    from_address = models.CharField(max_length=320, blank=True)
    from_name = models.CharField(max_length=200, blank=True)
    subject = models.CharField(max_length=500, blank=True)
    text = models.TextField(blank=True, help_text="The plain text, capped.")
    message_id = models.CharField(max_length=255, blank=True, help_text="The reply's own.")
    received_at = models.DateTimeField(default=timezone.now)
    imap_uid = models.PositiveBigIntegerField(null=True, blank=True)
    returns_on = models.DateField(null=True, blank=True, help_text="Out of office: back on.")
    bounce_hard = models.BooleanField(default=False)
    read_at = models.DateTimeField(null=True, blank=True)
    labels = models.ManyToManyField(ReplyLabel, blank=True, related_name="replies")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox", "message_id"],
                condition=~Q(message_id=""),
                name="reply_once_per_mailbox",
            )
        ]
        indexes = [
            models.Index(fields=["workspace", "-received_at"]),
            models.Index(fields=["workspace", "read_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} from {self.from_address}"


class MailboxPoll(models.Model):
    """Where the reply poll of one mailbox stands: the UIDs seen, and who holds the claim."""

    mailbox = models.OneToOneField(Mailbox, on_delete=models.CASCADE, related_name="reply_poll")
    uidvalidity = models.PositiveBigIntegerField(null=True, blank=True)
    last_uid = models.PositiveBigIntegerField(default=0)
    next_poll_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    failures = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["next_poll_at"])]

    def __str__(self) -> str:
        return f"Reply poll of {self.mailbox}"
