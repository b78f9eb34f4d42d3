"""Operations console for the leaderboard: who takes part (read-only numbers; support can take
a workspace off the board, as its owner could) and the consent log (append-only)."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from leaderboard.models import ConsentRecord, Participant
from leaderboard.services.consent import leaderboard_opt_out


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = ["workspace", "board_score", "tier", "ranked", "external_sent", "joined_at"]
    list_filter = ["ranked", "tier"]
    list_select_related = ["workspace"]
    search_fields = ["workspace__name", "workspace__public_id", "workspace__leaderboard_handle"]
    readonly_fields = [
        "workspace", "joined_at", "terms_version", "consented_by", "avatar_seed", "board_score",
        "tier", "external_sent", "ranked", "streak_days", "badges", "season",
        "season_start_score", "computed_at",
    ]  # fmt: skip
    actions = ["take_off"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # only an owner's consent puts a workspace on the board

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # through the action, which records it

    @admin.action(description="Take off the board (recorded as an opt-out)")
    def take_off(self, request: HttpRequest, queryset: QuerySet[Participant]) -> None:
        count = 0
        for participant in queryset.select_related("workspace"):
            count += leaderboard_opt_out(workspace=participant.workspace, actor=None)
        self.message_user(request, f"{count} workspace(s) taken off.", messages.SUCCESS)


@admin.register(ConsentRecord)
class ConsentRecordAdmin(admin.ModelAdmin):
    list_display = ["workspace", "action", "terms_version", "user", "at"]
    list_filter = ["action", "terms_version"]
    list_select_related = ["workspace", "user"]
    search_fields = ["workspace__name", "workspace__public_id", "user__email"]
    readonly_fields = ["workspace", "user", "action", "terms_version", "at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
