"""Operations console for outgoing webhooks: endpoints (disable / re-enable) and deliveries."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.services.endpoints import endpoint_disable


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["public_id", "workspace", "url", "active", "consecutive_failures", "created_at"]
    list_filter = ["active"]
    list_select_related = ["workspace"]
    search_fields = ["public_id", "url", "workspace__name", "workspace__public_id"]
    readonly_fields = [
        "public_id", "workspace", "secret_encrypted", "consecutive_failures", "disabled_at",
        "disabled_reason", "created_by", "created_at",
    ]  # fmt: skip
    exclude = ["secret_encrypted"]
    actions = ["disable"]

    @admin.action(description="Disable (stop sending; outstanding deliveries are given up)")
    def disable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        count = 0
        for endpoint in queryset.filter(active=True).select_related("workspace"):
            endpoint_disable(
                endpoint=endpoint, actor=None, reason="Disabled by the platform's operators."
            )
            count += 1
        self.message_user(request, f"{count} endpoint(s) disabled.", messages.SUCCESS)


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["number", "at", "status_code", "error", "response_excerpt", "duration_ms"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "endpoint", "event_type", "state", "attempts", "last_status_code",
                    "next_attempt_at", "created_at"]  # fmt: skip
    list_filter = ["state", "event_type"]
    list_select_related = ["endpoint"]
    search_fields = ["event_id", "endpoint__public_id", "endpoint__url"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    inlines = [WebhookAttemptInline]
    show_full_result_count = False
