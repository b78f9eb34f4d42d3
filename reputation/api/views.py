from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.views import api_memberships
from reputation import selectors
from reputation.api.serializers import EventFilterSerializer, EventSerializer
from reputation.models import Event


class EventViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Events of your sending domains, newest first; filter by domain, kind, mailbox, recipient
    and time (`since` inclusive, `until` exclusive)."""

    serializer_class = EventSerializer
    queryset = Event.objects.none()

    @extend_schema(parameters=[EventFilterSerializer])
    def list(self, request: Request) -> Response:
        filters = EventFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        events = selectors.event_list(
            workspace_ids=api_memberships(request).values("workspace_id"),
            filters=filters.validated_data,
        )
        page = self.paginate_queryset(events)
        return self.get_paginated_response(EventSerializer(page, many=True).data)
