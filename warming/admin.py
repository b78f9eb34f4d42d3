"""The console for warming: golden seeds (operator mailboxes), the day's planned sends, and each
mailbox's warm-up settings."""

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from warming.models import GoldenSeed, WarmupSend, WarmupSettings


@admin.register(GoldenSeed)
class GoldenSeedAdmin(admin.ModelAdmin):
    list_display = ["address", "provider", "daily_budget", "active", "created_at"]
    list_filter = ["provider", "active"]
    search_fields = ["address", "display_name"]
    readonly_fields = ["created_at"]


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
    ]
    list_filter = ["cluster", "day"]
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
        "tag",
    ]
    list_filter = ["paused", "weekdays_only", "prewarmed"]
    list_select_related = ["mailbox__domain"]
    search_fields = ["mailbox__local_part", "mailbox__domain__name", "tag"]
    readonly_fields = ["mailbox", "updated_at"]

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False
