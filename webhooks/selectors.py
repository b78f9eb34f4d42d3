"""Reads for the Webhooks page and API."""

from django.db.models import Count, Prefetch, Q, QuerySet

from accounts.models import Workspace
from webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookEndpoint


def endpoint_list(*, workspace_ids: QuerySet | list[int]) -> QuerySet[WebhookEndpoint]:
    """Endpoints of these workspaces, with their recent delivery counts."""
    return (
        WebhookEndpoint.objects.filter(workspace_id__in=workspace_ids)
        .select_related("workspace")
        .annotate(
            failing=Count(
                "deliveries", filter=Q(deliveries__state=DeliveryState.FAILED), distinct=True
            ),
        )
        .order_by("created_at", "pk")
    )


def endpoint_get(*, workspace: Workspace, public_id: str) -> WebhookEndpoint | None:
    return (
        WebhookEndpoint.objects.filter(workspace=workspace, public_id=public_id)
        .select_related("workspace")
        .first()
    )


def delivery_list(
    *, endpoint: WebhookEndpoint, state: str = "", event_type: str = ""
) -> QuerySet[WebhookDelivery]:
    """The endpoint's delivery log, newest first, each with its attempts."""
    rows = WebhookDelivery.objects.filter(endpoint=endpoint)
    if state:
        rows = rows.filter(state=state)
    if event_type:
        rows = rows.filter(event_type=event_type)
    return rows.prefetch_related(
        Prefetch("attempt_log", queryset=WebhookAttempt.objects.order_by("number"))
    ).order_by("-created_at", "-id")
