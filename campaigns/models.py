"""Leads, their lists and imports, campaigns with their steps and variants, and what was sent.

A campaign's unit of work is a `CampaignLead` (one lead in one campaign): it carries the next step
due and when (`next_at`, indexed), and the mailbox that sends its whole thread. Each step sent to
a lead is one `CampaignSend`, unique per (campaign lead, step) and created in the same transaction
as its `Message` and its credit: that unique row is what makes dispatch idempotent.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import User, Workspace, public_id_new
from sending.models import Mailbox, Message


def lead_public_id_new() -> str:
    return public_id_new("lead_")


def list_public_id_new() -> str:
    return public_id_new("lst_")


def import_public_id_new() -> str:
    return public_id_new("imp_")


def campaign_public_id_new() -> str:
    return public_id_new("cmp_")


class LeadStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    REPLIED = "replied", "Replied"
    BOUNCED = "bounced", "Bounced"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    COMPLAINED = "complained", "Complained"
    OUT_OF_OFFICE = "out_of_office", "Out of office"


class LeadList(models.Model):
    """A named group of leads (an import goes into one); a lead may be on several lists."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="lead_lists")
    public_id = models.CharField(max_length=32, unique=True, default=list_public_id_new)
    name = models.CharField(max_length=120)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="lead_list_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


class Lead(models.Model):
    """A prospect, once per address per workspace (imports merge into the existing row)."""

    id = models.BigAutoField(primary_key=True)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="leads")
    public_id = models.CharField(max_length=32, unique=True, default=lead_public_id_new)
    email = models.CharField(max_length=320, help_text="Lower-case, as sent to.")
    first_name = models.CharField(max_length=120, blank=True)
    last_name = models.CharField(max_length=120, blank=True)
    company = models.CharField(max_length=200, blank=True)
    title = models.CharField(max_length=200, blank=True)
    phone = models.CharField(max_length=60, blank=True)
    website = models.CharField(max_length=300, blank=True)
    time_zone = models.CharField(
        max_length=64, blank=True, help_text="Given, or guessed from the address's country."
    )
    time_zone_guessed = models.BooleanField(default=False)
    custom_fields = models.JSONField(default=dict, blank=True)
    role_address = models.BooleanField(
        default=False, help_text="info@, sales@ ...: reaches a team, not a person."
    )
    status = models.CharField(max_length=16, choices=LeadStatus.choices, default=LeadStatus.ACTIVE)
    status_changed_at = models.DateTimeField(default=timezone.now)
    out_of_office_until = models.DateField(null=True, blank=True)
    lists = models.ManyToManyField(LeadList, through="LeadListMembership", related_name="leads")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "email"], name="lead_email_unique")
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)


class LeadListMembership(models.Model):
    id = models.BigAutoField(primary_key=True)
    lead_list = models.ForeignKey(LeadList, on_delete=models.CASCADE, related_name="memberships")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["lead_list", "lead"], name="lead_list_member_unique")
        ]


class ImportState(models.TextChoices):
    UPLOADED = "uploaded", "Waiting for the column mapping"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Importing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ImportKind(models.TextChoices):
    LEADS = "leads", "Leads"
    SUPPRESSIONS = "suppressions", "Suppressions"


class LeadImport(models.Model):
    """One CSV upload, imported in the background (streamed from the stored file)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="imports")
    public_id = models.CharField(max_length=32, unique=True, default=import_public_id_new)
    kind = models.CharField(max_length=16, choices=ImportKind.choices, default=ImportKind.LEADS)
    lead_list = models.ForeignKey(
        LeadList, null=True, blank=True, on_delete=models.SET_NULL, related_name="imports"
    )
    file = models.FileField(upload_to="imports/%Y/%m/")
    file_name = models.CharField(max_length=255)
    file_size = models.PositiveBigIntegerField(default=0)
    encoding = models.CharField(max_length=40, blank=True)
    delimiter = models.CharField(max_length=1, blank=True)
    headers = models.JSONField(default=list, blank=True)
    # {"columns": {"<column index>": "email" | "first_name" | ... | "custom:<name>" | ""},
    #  "skip_role_addresses": bool}; by index, so two columns with one header name both map.
    mapping = models.JSONField(default=dict, blank=True)
    state = models.CharField(
        max_length=16, choices=ImportState.choices, default=ImportState.UPLOADED
    )
    error = models.TextField(blank=True)
    bytes_done = models.PositiveBigIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    # The first problems, with their line numbers ({"line": n, "message": "..."}); the counts
    # hold the total.
    problems = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.state})"

    @property
    def progress_percent(self) -> int:
        if self.state == ImportState.DONE:
            return 100
        if not self.file_size:
            return 0
        return min(99, int(100 * self.bytes_done / self.file_size))


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"


WEEKDAYS = [0, 1, 2, 3, 4]  # Monday .. Friday


def weekdays_default() -> list[int]:
    return list(WEEKDAYS)


class OutOfOffice(models.TextChoices):
    RESUME = "resume", "Hold the lead until the return date, then carry on"
    STOP = "stop", "Stop the lead's sequence"


class Campaign(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="campaigns")
    public_id = models.CharField(max_length=32, unique=True, default=campaign_public_id_new)
    name = models.CharField(max_length=120)
    status = models.CharField(
        max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT
    )
    status_reason = models.TextField(blank=True)
    # Paused by bounce protection (or another automatic rule): the customer must resume it.
    paused_by_system = models.BooleanField(default=False)
    bounces_counted_from = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Bounce protection counts the sends from here on (set when the customer "
        "resumes a campaign it paused, so the bounces already dealt with do not pause it again).",
    )
    start_at = models.DateTimeField(null=True, blank=True, help_text="Scheduled start.")
    time_zone = models.CharField(max_length=64, default="UTC")
    use_lead_time_zone = models.BooleanField(
        default=True, help_text="Send in each lead's own working hours when its zone is known."
    )
    send_days = models.JSONField(default=weekdays_default, help_text="0 = Monday ... 6 = Sunday.")
    window_start = models.TimeField(default="09:00")
    window_end = models.TimeField(default="17:00")
    holiday_country = models.CharField(
        max_length=2, blank=True, help_text="Skip this country's public holidays (ISO code)."
    )
    daily_limit = models.PositiveIntegerField(default=500, help_text="Messages a day, all steps.")
    daily_new_leads = models.PositiveIntegerField(
        default=100, help_text="First steps a day; follow-ups go first."
    )
    stop_on_reply = models.BooleanField(default=True)
    stop_on_auto_reply = models.BooleanField(
        default=False, help_text="Stop a lead's sequence on an automatic reply too."
    )
    out_of_office = models.CharField(
        max_length=8,
        choices=OutOfOffice.choices,
        default=OutOfOffice.RESUME,
        help_text="What an out-of-office reply does to the lead's sequence.",
    )
    provider_matching = models.BooleanField(
        default=False, help_text="Google senders to Google recipients, Microsoft to Microsoft."
    )
    mailboxes = models.ManyToManyField(Mailbox, related_name="campaigns", blank=True)
    lead_lists = models.ManyToManyField(LeadList, related_name="campaigns", blank=True)
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    launched_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class CampaignStep(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(help_text="1 for the first message.")
    delay_days = models.PositiveSmallIntegerField(
        default=0, help_text="Days after the previous step (the first step: 0)."
    )

    class Meta:
        ordering = ["campaign_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "position"], name="campaign_step_unique")
        ]

    def __str__(self) -> str:
        return f"Step {self.position}"


class StepVariant(models.Model):
    """One version of a step's message (A/B testing); leads are split evenly between them."""

    step = models.ForeignKey(CampaignStep, on_delete=models.CASCADE, related_name="variants")
    label = models.CharField(max_length=2, default="A")
    subject = models.CharField(
        max_length=500, blank=True, help_text="Empty on a follow-up: 'Re: ' + the first subject."
    )
    body = models.TextField()
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["step_id", "label"]
        constraints = [
            models.UniqueConstraint(fields=["step", "label"], name="step_variant_unique")
        ]

    def __str__(self) -> str:
        return f"{self.step} {self.label}"


class CampaignLeadState(models.TextChoices):
    WAITING = "waiting", "Waiting for its next step"
    FINISHED = "finished", "Sequence finished"
    STOPPED = "stopped", "Stopped"


class CampaignLead(models.Model):
    """One lead in one campaign: its next step, when it is due, and its thread's mailbox."""

    id = models.BigAutoField(primary_key=True)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="leads")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="campaign_leads")
    state = models.CharField(
        max_length=16, choices=CampaignLeadState.choices, default=CampaignLeadState.WAITING
    )
    state_reason = models.CharField(max_length=300, blank=True)
    next_step = models.PositiveSmallIntegerField(default=1)
    next_at = models.DateTimeField(null=True, blank=True)
    # What the next attempt waits for, when it is held ("outside the sending window", ...).
    waiting_for = models.CharField(max_length=300, blank=True)
    mailbox = models.ForeignKey(
        Mailbox, null=True, blank=True, on_delete=models.SET_NULL, related_name="campaign_leads"
    )
    # The first message's Message-ID and subject: follow-ups thread under them.
    thread_message_id = models.CharField(max_length=255, blank=True)
    thread_subject = models.CharField(max_length=500, blank=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "lead"], name="campaign_lead_unique")
        ]
        indexes = [
            models.Index(
                fields=["next_at"], condition=Q(state="waiting"), name="campaign_lead_due"
            ),
            models.Index(fields=["campaign", "state"]),
        ]

    def __str__(self) -> str:
        return f"{self.lead} in {self.campaign}"


class CampaignSend(models.Model):
    """One step sent (reserved) to one lead: unique per (campaign lead, step)."""

    id = models.BigAutoField(primary_key=True)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="sends")
    campaign_lead = models.ForeignKey(CampaignLead, on_delete=models.CASCADE, related_name="sends")
    step = models.ForeignKey(CampaignStep, on_delete=models.CASCADE, related_name="sends")
    variant = models.ForeignKey(
        StepVariant, null=True, on_delete=models.SET_NULL, related_name="sends"
    )
    mailbox = models.ForeignKey(
        Mailbox, null=True, on_delete=models.SET_NULL, related_name="campaign_sends"
    )
    message = models.OneToOneField(
        Message, null=True, on_delete=models.SET_NULL, related_name="campaign_send"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign_lead", "step"], name="campaign_send_once")
        ]
        indexes = [
            models.Index(fields=["mailbox", "created_at"]),
            models.Index(fields=["campaign", "-id"]),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_lead} step {self.step_id}"
