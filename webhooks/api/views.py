"""API: a workspace's webhook endpoints (`/api/v1/webhooks/`), their delivery logs and a test
event. Reads for any member; changes for owners and admins (the services check it)."""

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.views import api_membership_for_write, api_memberships
from accounts.http import api_user
from webhooks import selectors
from webhooks.api.serializers import (
    DeliverySerializer,
    EndpointCreatedSerializer,
    EndpointCreateSerializer,
    EndpointSerializer,
    EndpointUpdateSerializer,
)
from webhooks.models import DeliveryState, WebhookEndpoint
from webhooks.services.deliveries import webhook_test_send
from webhooks.services.endpoints import (
    endpoint_create,
    endpoint_delete,
    endpoint_disable,
    endpoint_enable,
    endpoint_update,
    require_admin,
)

DELIVERY_FILTERS = [
    OpenApiParameter(
        "state", OpenApiTypes.STR, enum=list(DeliveryState.values), description="Only this state."
    ),
    OpenApiParameter("event_type", OpenApiTypes.STR, description="Only this event type."),
]


class WebhookViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Where your workspace's events are POSTed, signed (Standard Webhooks)."""

    serializer_class = EndpointSerializer
    queryset = WebhookEndpoint.objects.none()
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[WebhookEndpoint]:
        return selectors.endpoint_list(
            workspace_ids=api_memberships(self.request).values("workspace_id")
        )

    @extend_schema(request=EndpointCreateSerializer, responses={201: EndpointCreatedSerializer})
    def create(self, request: Request) -> Response:
        """Add an endpoint; the response carries its signing secret."""
        data = EndpointCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = api_membership_for_write(request, data.validated_data.get("workspace"))
        endpoint, secret = endpoint_create(
            workspace=membership.workspace,
            actor=api_user(request),
            url=data.validated_data["url"],
            events=data.validated_data["events"],
            description=data.validated_data["description"],
        )
        body = EndpointSerializer(endpoint).data | {"secret": secret}
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=EndpointUpdateSerializer, responses=EndpointSerializer)
    def partial_update(self, request: Request, id: str) -> Response:
        """Change the URL, events or description, or turn the endpoint off or back on."""
        endpoint = self.get_object()
        data = EndpointUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        given = data.validated_data
        user = api_user(request)
        require_admin(workspace=endpoint.workspace, user=user)
        endpoint_update(
            endpoint=endpoint,
            actor=user,
            url=given.get("url"),
            events=given.get("events"),
            description=given.get("description"),
        )
        if given.get("active") is True:
            endpoint_enable(endpoint=endpoint, actor=user)
        elif given.get("active") is False:
            endpoint_disable(endpoint=endpoint, actor=user, reason="Turned off through the API.")
        return Response(EndpointSerializer(self.get_queryset().get(pk=endpoint.pk)).data)

    def destroy(self, request: Request, id: str) -> Response:
        endpoint_delete(endpoint=self.get_object(), actor=api_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(parameters=DELIVERY_FILTERS, responses=DeliverySerializer(many=True))
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, id: str) -> Response:
        """The endpoint's delivery log, newest first, each with its attempts."""
        endpoint = self.get_object()
        state = request.query_params.get("state", "")
        if state and state not in DeliveryState.values:
            raise serializers.ValidationError(
                {"state": [f"Use one of: {', '.join(DeliveryState.values)}."]}
            )
        rows = selectors.delivery_list(
            endpoint=endpoint,
            state=state,
            event_type=request.query_params.get("event_type", "")[:40],
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)

    @extend_schema(request=None, responses={202: DeliverySerializer})
    @action(detail=True, methods=["post"])
    def test(self, request: Request, id: str) -> Response:
        """Send a `webhook.test` event now (attempted once; see the delivery log)."""
        delivery = webhook_test_send(endpoint=self.get_object(), actor=api_user(request))
        delivery.refresh_from_db()
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
