"""A workspace's subscription as the platform understands it, its credits, and the catalog ids.

Stripe's own objects (customers, subscriptions, invoices, prices) live in dj-stripe's tables;
`BillingAccount` is the platform's reading of them, refreshed from every webhook, so that limit
checks on hot paths read one row instead of Stripe's JSON.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Workspace


class BillingAccount(models.Model):
    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="billing")
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    subscription_id = models.CharField(max_length=255, blank=True, db_index=True)
    plan = models.CharField(max_length=32, blank=True, help_text="Plan of the subscription.")
    interval = models.CharField(max_length=16, blank=True)
    interval_count = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=32, blank=True, help_text="Stripe's subscription status.")
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    past_due_since = models.DateTimeField(null=True, blank=True)
    flagged_reason = models.TextField(
        blank=True, help_text="Why the subscription is not granted its plan (staff review)."
    )
    flagged_at = models.DateTimeField(null=True, blank=True)
    comp_plan = models.CharField(
        max_length=32, blank=True, help_text="A plan granted by support, used when nothing is paid."
    )
    comp_reason = models.TextField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(
                fields=["flagged_at"], name="billing_flagged", condition=~Q(flagged_at=None)
            )
        ]

    def __str__(self) -> str:
        return f"{self.workspace.name}: {self.plan or 'no plan'} ({self.status or 'none'})"


class CreditKind(models.TextChoices):
    GRANT = "grant", "Daily grant"
    EARN = "earn", "Earned by warming"
    SPEND = "spend", "Spent on a send"
    EXPIRE = "expire", "Expired"
    ADJUST = "adjust", "Adjusted by support"


class CreditAccount(models.Model):
    """The balance, in two parts: today's grant (expires at the next grant) and earned credits.

    Every change is one conditional UPDATE of this row plus one CreditEntry, in one transaction,
    so the balance is exact under concurrent writers and the CHECKs make a negative one impossible.
    """

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="credits")
    granted = models.IntegerField(default=0)
    earned = models.IntegerField(default=0)
    last_grant_day = models.DateField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(granted__gte=0), name="credits_granted_gte_0"),
            models.CheckConstraint(condition=Q(earned__gte=0), name="credits_earned_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.workspace.name}: {self.balance} credits"

    @property
    def balance(self) -> int:
        return self.granted + self.earned


class CreditEntry(models.Model):
    """One append-only line of the ledger; the balance is always the sum of `amount`."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=CreditKind.choices)
    amount = models.IntegerField()
    balance_after = models.IntegerField()
    reason = models.CharField(max_length=200)
    # What it is for (a message, a day, a staff ticket): one entry per kind and reference.
    reference = models.CharField(max_length=128, blank=True)
    actor = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "credit entries"
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "kind", "reference"],
                condition=~Q(reference=""),
                name="credit_entry_once_per_reference",
            ),
            models.CheckConstraint(condition=Q(balance_after__gte=0), name="credit_entry_gte_0"),
        ]
        indexes = [models.Index(fields=["workspace", "-id"], name="credit_entry_history")]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount:+d} ({self.reason})"


class CatalogEntry(models.Model):
    """The Stripe id behind each catalog key: products, prices, the portal configuration."""

    key = models.CharField(max_length=64, unique=True)
    stripe_id = models.CharField(max_length=255)
    livemode = models.BooleanField(default=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["key"]
        verbose_name_plural = "catalog entries"

    def __str__(self) -> str:
        return f"{self.key} = {self.stripe_id}"
