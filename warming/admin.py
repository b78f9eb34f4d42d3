"""The console for warming: golden seeds (operator mailboxes), the day's planned sends, and each
mailbox's warm-up settings."""

from django import forms
from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from accounts.crypto import secret_encrypt
from warming.models import GoldenSeed, WarmupSend, WarmupSettings


class GoldenSeedForm(forms.ModelForm):
    """The seed's servers; passwords are write-only (stored encrypted; blank keeps the old one)."""

    smtp_password = forms.CharField(
        required=False, widget=forms.PasswordInput, help_text="Leave blank to keep the current one."
    )
    imap_password = forms.CharField(
        required=False, widget=forms.PasswordInput, help_text="Leave blank to keep the current one."
    )

    class Meta:
        model = GoldenSeed
        fields = [
            "address", "display_name", "provider", "daily_budget", "active", "notes",
            "smtp_host", "smtp_port", "smtp_security", "smtp_username",
            "imap_host", "imap_port", "imap_security", "imap_username",
        ]  # fmt: skip

    def clean(self) -> dict:
        data = super().clean() or {}
        for prefix in ("smtp", "imap"):
            if data.get(f"{prefix}_host"):
                for part in ("port", "security", "username"):
                    if not data.get(f"{prefix}_{part}"):
                        self.add_error(f"{prefix}_{part}", f"Needed with an {prefix.upper()} host.")
        return data

    def save(self, commit: bool = True) -> GoldenSeed:
        seed = super().save(commit=False)
        for prefix in ("smtp", "imap"):
            password = self.cleaned_data.get(f"{prefix}_password")
            if password:
                setattr(seed, f"{prefix}_password_encrypted", secret_encrypt(password))
        if commit:
            seed.save()
        return seed


@admin.register(GoldenSeed)
class GoldenSeedAdmin(admin.ModelAdmin):
    form = GoldenSeedForm
    list_display = ["address", "provider", "daily_budget", "active", "agent_error", "created_at"]
    list_filter = ["provider", "active"]
    search_fields = ["address", "display_name"]
    readonly_fields = ["agent_error", "agent_retry_at", "created_at"]


@admin.register(WarmupSend)
class WarmupSendAdmin(admin.ModelAdmin):
    list_display = [
        "day",
        "send_at",
        "cluster",
        "sender",
        "sender_seed",
        "recipient",
        "recipient_seed",
        "step",
        "placement",
    ]
    list_filter = ["cluster", "step", "placement", "by_hand", "day"]
    list_select_related = ["sender__domain", "sender_seed", "recipient__domain", "recipient_seed"]
    search_fields = ["sender__local_part", "recipient__local_part", "sender__domain__name"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(WarmupSettings)
class WarmupSettingsAdmin(admin.ModelAdmin):
    list_display = [
        "mailbox",
        "started_on",
        "target",
        "reply_rate",
        "weekdays_only",
        "paused",
        "agent_error",
        "tag",
    ]
    list_filter = ["paused", "weekdays_only", "prewarmed"]
    list_select_related = ["mailbox__domain"]
    search_fields = ["mailbox__local_part", "mailbox__domain__name", "tag"]
    readonly_fields = ["mailbox", "updated_at"]

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False
