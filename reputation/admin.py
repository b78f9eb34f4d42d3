from django.contrib import admin

from reputation.models import Event, RawRecord, ReputationAlert, ScoreHistory


class ReadOnlyAdmin(admin.ModelAdmin):
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["occurred_at", "kind", "domain", "mailbox", "recipient", "classification"]
    list_filter = ["kind", "message_kind", "occurred_at"]
    search_fields = ["recipient", "message_id", "domain__name", "domain__public_id"]
    list_select_related = ["domain", "mailbox", "mailbox__domain"]
    date_hierarchy = "occurred_at"


@admin.register(RawRecord)
class RawRecordAdmin(ReadOnlyAdmin):
    list_display = ["id", "record_key", "received_at", "waiting"]
    list_filter = ["received_at"]
    search_fields = ["record_key"]

    @admin.display(boolean=True, description="Waiting to be processed")
    def waiting(self, record: RawRecord) -> bool:
        return hasattr(record, "pending")


@admin.register(ScoreHistory)
class ScoreHistoryAdmin(ReadOnlyAdmin):
    list_display = ["at", "domain", "score", "tier", "provisional", "scoring_version"]
    list_filter = ["tier", "provisional", "scoring_version"]
    search_fields = ["domain__name", "domain__public_id"]
    list_select_related = ["domain"]


@admin.register(ReputationAlert)
class ReputationAlertAdmin(ReadOnlyAdmin):
    list_display = ["opened_at", "code", "level", "domain", "mailbox", "resolved_at", "message"]
    list_filter = ["code", "level", "resolved_at"]
    search_fields = ["domain__name", "domain__public_id", "message"]
    list_select_related = ["domain", "mailbox", "mailbox__domain"]
