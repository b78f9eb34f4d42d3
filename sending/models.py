import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.crypto import secret_decrypt
from accounts.models import Workspace, public_id_new
from config.errors import ApplicationError
from sending.domain_names import domain_name_display


def domain_public_id_new() -> str:
    return public_id_new("dom_")


def ownership_token_new() -> str:
    return secrets.token_hex(16)


class DomainStatus(models.TextChoices):
    PENDING_DNS = "pending_dns", "Waiting for DNS"
    VERIFIED = "verified", "Verified"
    COOLDOWN = "cooldown", "Cool-down"
    QUARANTINED = "quarantined", "Quarantined"
    RETIRED = "retired", "Retired"


class Provider(models.TextChoices):
    GOOGLE = "google", "Google Workspace"
    MICROSOFT = "microsoft", "Microsoft 365"
    OTHER = "other", "Other"
    UNKNOWN = "unknown", "Unknown"


class SendsThrough(models.TextChoices):
    """How a domain's mail leaves: that decides which DNS records it needs and who signs it."""

    PLATFORM = "platform", "Through the platform (our MTA signs with its DKIM key)"
    OWN_SERVERS = (
        "own_servers",
        "Through its own mail servers (Google Workspace, Microsoft 365, ...)",
    )


class DkimState(models.TextChoices):
    """A domain's DKIM as the product sees it (`SendingDomain.dkim_state`)."""

    PLATFORM_KEY = "platform_key", "The platform's key, checked in DNS"
    PENDING = "pending", "Pending: confirmed from the first warm-up message"
    FAILED = "failed", "Not confirmed: the last warm-up message did not pass"
    CONFIRMED = "confirmed", "Confirmed from a warm-up message"


class SendingDomain(models.Model):
    """A customer's sending domain; its public id is the tenant id the MTA sees."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="sending_domains"
    )
    name = models.CharField(max_length=253, help_text="Lower-case ASCII (punycode) form.")
    public_id = models.CharField(max_length=32, unique=True, default=domain_public_id_new)
    status = models.CharField(
        max_length=16, choices=DomainStatus.choices, default=DomainStatus.PENDING_DNS
    )
    status_reason = models.TextField(blank=True)
    status_changed_at = models.DateTimeField(default=timezone.now)
    cooldown_until = models.DateTimeField(null=True, blank=True)
    ownership_token = models.CharField(max_length=64, default=ownership_token_new)
    provider = models.CharField(max_length=16, choices=Provider.choices, default=Provider.UNKNOWN)
    dns_results = models.JSONField(default=list, blank=True)
    dns_checked_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True)
    trust_score = models.FloatField(null=True, blank=True)
    tier = models.CharField(max_length=16, default="rehab")
    score_provisional = models.BooleanField(default=True)
    scoring_version = models.PositiveSmallIntegerField(default=0)
    score_metrics = models.JSONField(default=dict, blank=True)
    score_updated_at = models.DateTimeField(null=True, blank=True)
    rehab_started_at = models.DateTimeField(null=True, blank=True)
    # db_default too: rows written by raw SQL (bulk loads, older code during a deploy) get it.
    is_demo = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Demo data: shown as verified although its DNS is not published, so DNS "
        "checks report but never change its status.",
    )
    sends_through = models.CharField(
        max_length=16,
        choices=SendsThrough.choices,
        default=SendsThrough.PLATFORM,
        db_default=SendsThrough.PLATFORM,
        help_text="Own servers: verified by ownership, DMARC and its own SPF; its DKIM is "
        "confirmed from the first warm-up message the agent reads.",
    )
    # Set once, by the first warm-up message whose aligned DKIM-Signature verified; never
    # cleared by a later failure (only by a change of how the domain sends).
    dkim_confirmed_at = models.DateTimeField(null=True, blank=True)
    dkim_confirmed_selector = models.CharField(max_length=63, blank=True, db_default="")
    dkim_confirmed_auth_results = models.TextField(
        blank=True,
        db_default="",
        help_text="The receiving server's Authentication-Results on that message.",
    )
    dkim_last_observation = models.JSONField(
        default=dict,
        db_default={},
        blank=True,
        help_text="The latest DKIM check of a warm-up message: result, code, reason, selector, "
        "signing domain, Authentication-Results.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                "name",
                condition=~Q(status="retired"),
                name="sending_domain_claimed_once",
                violation_error_message="This domain is already claimed by a workspace.",
            )
        ]
        indexes = [models.Index(fields=["next_check_at"])]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def display_name(self) -> str:
        return domain_name_display(self.name)

    @property
    def can_send(self) -> bool:
        return self.status == DomainStatus.VERIFIED

    @property
    def own_servers(self) -> bool:
        return self.sends_through == SendsThrough.OWN_SERVERS

    @property
    def dkim_pending(self) -> bool:
        """Own servers, DKIM not confirmed yet: the warm-up agent checks what arrives."""
        return self.own_servers and self.dkim_confirmed_at is None

    @property
    def dkim_state(self) -> str:
        if not self.own_servers:
            return DkimState.PLATFORM_KEY
        if self.dkim_confirmed_at is not None:
            return DkimState.CONFIRMED
        if self.dkim_last_observation.get("ok") is False:
            return DkimState.FAILED
        return DkimState.PENDING


class DkimKeyState(models.TextChoices):
    PENDING = "pending", "Published, waiting for DNS"
    ACTIVE = "active", "Signing"
    RETIRING = "retiring", "Replaced, still published"
    RETIRED = "retired", "Retired"


class DkimKey(models.Model):
    """A DKIM key pair; the private key is encrypted at rest and wiped once retired."""

    domain = models.ForeignKey(SendingDomain, on_delete=models.CASCADE, related_name="dkim_keys")
    selector = models.CharField(max_length=63)
    public_key = models.TextField()
    private_key_encrypted = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=DkimKeyState.choices)
    created_at = models.DateTimeField(default=timezone.now)
    activated_at = models.DateTimeField(null=True, blank=True)
    retire_after = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["domain", "selector"], name="dkim_selector_unique"),
            models.UniqueConstraint(
                fields=["domain"], condition=Q(state="active"), name="dkim_one_active_key"
            ),
            models.UniqueConstraint(
                fields=["domain"], condition=Q(state="pending"), name="dkim_one_pending_key"
            ),
        ]
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.selector}._domainkey.{self.domain.name} ({self.state})"

    def private_key_pem(self) -> str:
        """The PEM private key (for the MTA's signer); only while the key is live."""
        if not self.private_key_encrypted:
            raise ApplicationError("This DKIM key was retired.", code="dkim_retired")
        return secret_decrypt(self.private_key_encrypted)


class ConnectionType(models.TextChoices):
    PLATFORM = "platform", "Platform (sent through our MTA)"
    EXTERNAL = "external", "External (your own SMTP and IMAP server)"


class TlsMode(models.TextChoices):
    SSL = "ssl", "SSL/TLS (implicit)"
    STARTTLS = "starttls", "STARTTLS"
    NONE = "none", "None (plain text)"


class MailboxStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    COOLDOWN = "cooldown", "Cool-down"


class MailServers(models.Model):
    """An own SMTP and IMAP server and their logins (passwords encrypted at rest)."""

    smtp_host = models.CharField(max_length=253, blank=True)
    smtp_port = models.PositiveIntegerField(null=True, blank=True)
    smtp_security = models.CharField(max_length=16, choices=TlsMode.choices, blank=True)
    smtp_username = models.CharField(max_length=254, blank=True)
    smtp_password_encrypted = models.TextField(blank=True)
    imap_host = models.CharField(max_length=253, blank=True)
    imap_port = models.PositiveIntegerField(null=True, blank=True)
    imap_security = models.CharField(max_length=16, choices=TlsMode.choices, blank=True)
    imap_username = models.CharField(max_length=254, blank=True)
    imap_password_encrypted = models.TextField(blank=True)

    class Meta:
        abstract = True


class Mailbox(MailServers):
    """One sending address on a verified domain; external credentials are encrypted."""

    domain = models.ForeignKey(SendingDomain, on_delete=models.CASCADE, related_name="mailboxes")
    local_part = models.CharField(max_length=64)
    display_name = models.CharField(max_length=120, blank=True)
    connection = models.CharField(max_length=16, choices=ConnectionType.choices)
    provider = models.CharField(max_length=16, choices=Provider.choices, default=Provider.UNKNOWN)
    daily_limit = models.PositiveIntegerField(default=40)
    status = models.CharField(
        max_length=16, choices=MailboxStatus.choices, default=MailboxStatus.ACTIVE
    )
    status_reason = models.TextField(blank=True)
    status_changed_at = models.DateTimeField(default=timezone.now)
    status_set_by_system = models.BooleanField(
        default=False, help_text="Stopped by an automatic action: only staff resume it."
    )
    cooldown_until = models.DateTimeField(null=True, blank=True)
    warmup_enabled = models.BooleanField(default=True)
    limit_cut_at = models.DateTimeField(
        null=True, blank=True, help_text="When a bounce spike cut the daily limit by 40%."
    )
    limit_before_cut = models.PositiveIntegerField(null=True, blank=True)
    # The day the cut limit last stepped back up (one step per day, however often the job runs).
    limit_restored_on = models.DateField(null=True, blank=True)
    connection_checked_at = models.DateTimeField(null=True, blank=True)
    connection_ok = models.BooleanField(null=True)
    connection_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["domain", "local_part"], name="mailbox_unique_address")
        ]
        ordering = ["domain__name", "local_part"]
        verbose_name_plural = "mailboxes"

    def __str__(self) -> str:
        return self.address

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain.name}"

    @property
    def is_connected(self) -> bool:
        """Platform mailboxes send through our MTA; an external one only once its last
        connection test passed (new server settings clear the result)."""
        return self.connection != ConnectionType.EXTERNAL or self.connection_ok is True

    @property
    def oauth_grant(self) -> "MailboxGrant | None":
        """The OAuth grant it logs in with (Google, Microsoft), or None (a password)."""
        try:
            return self.grant
        except models.ObjectDoesNotExist:
            return None

    @property
    def warmup_active(self) -> bool:
        """Enrolled in warm-up and able to send: an external mailbox waits for its test."""
        return self.warmup_enabled and self.is_connected

    @property
    def warmup_status(self) -> str:
        """`enrolled`, `waiting_for_connection_test` or `off`, for the pages and the API."""
        if not self.warmup_enabled:
            return "off"
        return "enrolled" if self.is_connected else "waiting_for_connection_test"


class OAuthProvider(models.TextChoices):
    GOOGLE = "google", "Google"
    MICROSOFT = "microsoft", "Microsoft"


class GrantStatus(models.TextChoices):
    ACTIVE = "active", "Connected"
    REVOKED = "revoked", "Revoked or expired"


class MailboxGrant(models.Model):
    """An OAuth 2.0 grant that lets an external mailbox log in with XOAUTH2 instead of a
    password. Both tokens are encrypted at rest; the row is locked while a token is refreshed,
    so concurrent workers make one refresh request (docs/domains-and-mailboxes.md)."""

    mailbox = models.OneToOneField(Mailbox, on_delete=models.CASCADE, related_name="grant")
    provider = models.CharField(max_length=16, choices=OAuthProvider.choices)
    subject = models.CharField(max_length=255, blank=True, help_text="The provider's user id.")
    scopes = models.TextField(blank=True)
    refresh_token_encrypted = models.TextField()
    access_token_encrypted = models.TextField(blank=True)
    access_expires_at = models.DateTimeField(null=True, blank=True)
    # Set when the provider says the refresh token itself runs out (Google apps in "Testing").
    refresh_expires_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=GrantStatus.choices, default=GrantStatus.ACTIVE
    )
    problem = models.TextField(blank=True)
    connected_at = models.DateTimeField(default=timezone.now)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    refresh_count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.get_provider_display()} grant for mailbox {self.mailbox_id}"


class Suppression(models.Model):
    """An address never to send to again: by one workspace, or by anyone (workspace empty)."""

    class Reason(models.TextChoices):
        HARD_BOUNCE = "hard_bounce", "Hard bounce"
        COMPLAINT = "complaint", "Spam complaint"
        UNSUBSCRIBE = "unsubscribe", "Unsubscribed"
        MANUAL = "manual", "Added by hand"

    workspace = models.ForeignKey(
        Workspace, null=True, blank=True, on_delete=models.CASCADE, related_name="suppressions"
    )
    address = models.CharField(max_length=320)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    source = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "address"],
                condition=Q(workspace__isnull=False),
                name="suppression_workspace_unique",
            ),
            models.UniqueConstraint(
                fields=["address"],
                condition=Q(workspace__isnull=True),
                name="suppression_platform_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.address} ({self.reason})"


class SuppressedDomain(models.Model):
    """A whole domain never to email ("never anyone at competitor.com"): by one workspace, or
    by anyone (workspace empty)."""

    workspace = models.ForeignKey(
        Workspace,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="suppressed_domains",
    )
    domain = models.CharField(max_length=253, help_text="Lower-case ASCII (punycode) form.")
    reason = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["domain"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "domain"],
                condition=Q(workspace__isnull=False),
                name="suppressed_domain_workspace_unique",
            ),
            models.UniqueConstraint(
                fields=["domain"],
                condition=Q(workspace__isnull=True),
                name="suppressed_domain_platform_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.domain


class MessageKind(models.TextChoices):
    WARMUP = "warmup", "Warm-up"
    CAMPAIGN = "campaign", "Campaign"
    REPLY = "reply", "Reply from the inbox"


class MessageState(models.TextChoices):
    RESERVED = "reserved", "Reserved"
    SENDING = "sending", "Handing over"
    HANDED_OVER = "handed_over", "Handed over"
    DELIVERED = "delivered", "Delivered"
    BOUNCED = "bounced", "Bounced"
    FAILED = "failed", "Failed"


class TransportName(models.TextChoices):
    KUMO_HTTP = "kumo_http", "KumoMTA HTTP injection"
    SMTP_RELAY = "smtp_relay", "SMTP relay"
    MAILBOX_SMTP = "mailbox_smtp", "The mailbox's own SMTP server"


def message_token_new() -> str:
    return secrets.token_hex(16)


class Message(models.Model):
    """One outbound email. The row (with its Message-ID) exists before any transport sees it,
    and the hand-over is claimed by a conditional update, so a message is sent at most once."""

    id = models.BigAutoField(primary_key=True)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="messages")
    domain = models.ForeignKey(SendingDomain, on_delete=models.CASCADE, related_name="messages")
    mailbox = models.ForeignKey(
        Mailbox, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    kind = models.CharField(max_length=16, choices=MessageKind.choices)
    # The campaign or warm-up id the MTA sees (meta `campaign`).
    campaign_ref = models.CharField(max_length=64, blank=True)
    sender = models.CharField(max_length=320)
    sender_name = models.CharField(max_length=120, blank=True)
    recipient = models.CharField(max_length=320)
    recipient_name = models.CharField(max_length=120, blank=True)
    subject = models.CharField(max_length=500, blank=True)
    text_body = models.TextField(blank=True)
    html_body = models.TextField(blank=True)
    headers = models.JSONField(
        default=dict, blank=True, help_text="Extra headers (In-Reply-To, List-Unsubscribe, ...)."
    )
    # RFC 5322 msg-id without its angle brackets: "<token>@<sending domain>".
    message_id = models.CharField(max_length=255, unique=True)
    mta_id = models.CharField(max_length=64, blank=True, help_text="The MTA's spool id.")
    transport = models.CharField(max_length=16, choices=TransportName.choices, blank=True)
    state = models.CharField(
        max_length=16, choices=MessageState.choices, default=MessageState.RESERVED
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # An attempt got no answer (or the worker died during it): the next hop may have it, so a
    # re-send says so (X-Resend) and the MTA's note of it is never cleared.
    maybe_sent = models.BooleanField(default=False)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # When the current attempt started (its batch went to the transport); the booking matches
    # it, so a hand-over reconciled meanwhile is not booked over.
    attempt_started_at = models.DateTimeField(null=True, blank=True)
    handed_over_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(state="reserved"),
                name="message_due",
            ),
            models.Index(
                fields=["claimed_at"], condition=Q(state="sending"), name="message_in_hand"
            ),
            models.Index(fields=["domain", "created_at"]),
            models.Index(fields=["domain", "recipient", "created_at"]),
            models.Index(fields=["mta_id"], condition=~Q(mta_id=""), name="message_mta_id"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.sender} -> {self.recipient}"


class MailboxImportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class MailboxImportOutcome(models.TextChoices):
    CONNECTED = "connected", "Created and connected"
    NOT_CONNECTED = "not_connected", "Created, not connected"
    REFUSED = "refused", "Not created"


class MailboxImport(models.Model):
    """A CSV file of external mailboxes: each row is created, then its connection tested, in
    the background; the counts and the per-row results grow as the run goes."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="mailbox_imports"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    file_name = models.CharField(max_length=255)
    status = models.CharField(
        max_length=16, choices=MailboxImportStatus.choices, default=MailboxImportStatus.QUEUED
    )
    error = models.TextField(blank=True, help_text="Why the whole import failed.")
    total = models.PositiveIntegerField(default=0, help_text="Rows in the file.")
    created = models.PositiveIntegerField(default=0, help_text="Mailboxes created.")
    connected = models.PositiveIntegerField(default=0, help_text="Created and passed the test.")
    failed = models.PositiveIntegerField(default=0, help_text="Rows refused: nothing created.")
    # One entry per row done: {"line", "address", "outcome" (MailboxImportOutcome), "message",
    # "mailbox" (id or null), "link" ([label, url] or null)}. Never a password.
    results = models.JSONField(default=list, blank=True)
    # The rows with their passwords, encrypted (accounts.crypto); emptied when the run ends.
    rows_encrypted = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Last row finished: a running import that stops moving lost its worker.
    progress_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.status})"

    @property
    def done_rows(self) -> int:
        return self.created + self.failed

    @property
    def not_connected(self) -> int:
        return self.created - self.connected

    @property
    def progress_percent(self) -> int:
        if self.status in (MailboxImportStatus.DONE, MailboxImportStatus.FAILED):
            return 100
        if not self.total:
            return 0
        return min(99, int(100 * self.done_rows / self.total))
