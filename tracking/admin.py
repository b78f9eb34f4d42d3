from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from tracking.models import CampaignTracking, Click, Open, TrackedLink, TrackingDomain


@admin.register(TrackingDomain)
class TrackingDomainAdmin(admin.ModelAdmin):
    list_display = ("hostname", "workspace", "state", "last_checked_at", "verified_at")
    list_filter = ("state",)
    search_fields = ("hostname", "workspace__name", "workspace__public_id")
    list_select_related = ("workspace",)
    readonly_fields = (
        "id",
        "workspace",
        "hostname",
        "state",
        "error",
        "last_checked_at",
        "verified_at",
        "created_at",
    )


@admin.register(CampaignTracking)
class CampaignTrackingAdmin(admin.ModelAdmin):
    list_display = ("campaign", "opens", "clicks", "updated_at")
    list_filter = ("opens", "clicks")
    search_fields = ("campaign__name", "campaign__public_id")
    list_select_related = ("campaign",)
    readonly_fields = ("id", "campaign")


class _HitAdmin(admin.ModelAdmin):
    list_display = ("message", "at", "machine", "machine_reason", "user_agent")
    list_filter = ("machine",)
    search_fields = ("message__message_id", "message__recipient")
    list_select_related = ("message",)
    show_full_result_count = False  # big tables: no COUNT(*) per page
    raw_id_fields = ("message",)

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(Open)
class OpenAdmin(_HitAdmin):
    pass


@admin.register(Click)
class ClickAdmin(_HitAdmin):
    pass


@admin.register(TrackedLink)
class TrackedLinkAdmin(admin.ModelAdmin):
    list_display = ("message", "position", "url")
    search_fields = ("message__message_id", "url")
    list_select_related = ("message",)
    raw_id_fields = ("message",)
    show_full_result_count = False
    readonly_fields = ("id", "message", "position", "url")
