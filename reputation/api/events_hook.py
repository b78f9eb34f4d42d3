"""The product-events hook: opens, replies and the like, reported by the platform's own processes.

Scores move in the process that records what moves them, and only that process's pushes reach
the pages it serves (in the embedded profile the channel layer lives in the web process). So a
process that observes engagement elsewhere (the traffic simulator, a tracking or reply worker)
reports it here instead of writing it to the database itself. MTA records go to /hooks/kumomta/.
"""

import hmac
import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from config.throttling import FailOpen
from reputation.mapping import CLOCK_SKEW, EARLIEST_TIME
from reputation.services.events import RECORDABLE, ProductEvent, events_record

EVENTS_PER_REQUEST = 1000
HOOK_AUTH = "platform-hook"


class PlatformHookAuthentication(BaseAuthentication):
    """The bearer token the platform's hooks share (KUMO_WEBHOOK_TOKEN)."""

    def authenticate(self, request: Request) -> tuple[AnonymousUser, str] | None:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return None
        expected = settings.KUMO_WEBHOOK_TOKEN.encode()
        if not hmac.compare_digest(credentials.strip().encode(), expected):
            raise exceptions.AuthenticationFailed("A valid hook token is required.")
        return AnonymousUser(), HOOK_AUTH

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="hooks"'


class HookTokenRequired(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return request.auth == HOOK_AUTH


class EventsHookThrottle(FailOpen, SimpleRateThrottle):
    """Per client address; a caller told to wait gets Retry-After (counting needs the cache: while
    it is down the hook, which is authenticated, goes on like the rest of the API)."""

    scope = "events_hook"
    rate = "600/min"

    def get_cache_key(self, request: Request, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class ProductEventSerializer(serializers.Serializer):
    domain = serializers.CharField(max_length=32, help_text="The sending domain's public id.")
    kind = serializers.ChoiceField(choices=sorted(RECORDABLE))
    source_key = serializers.CharField(
        max_length=80, help_text="The caller's idempotency key: a replay is stored once."
    )
    recipient = serializers.CharField(max_length=320, required=False, default="", allow_blank=True)
    message_id = serializers.CharField(max_length=64, required=False, default="", allow_blank=True)
    occurred_at = serializers.DateTimeField(required=False, default=None, allow_null=True)

    def validate_occurred_at(self, value: datetime | None) -> datetime | None:
        # The bounds MTA records get (mapping): a far past or future time would land the event
        # in a day no window ever reads, or in a future day's counters.
        if value is None:
            return None
        latest = time.time() + CLOCK_SKEW
        if not EARLIEST_TIME <= value.timestamp() <= latest:
            raise serializers.ValidationError(
                "Must lie between 2000-01-01 and an hour from now; leave it out for now."
            )
        return value


class ProductEventsSerializer(serializers.Serializer):
    events = serializers.ListField(
        child=ProductEventSerializer(), allow_empty=False, max_length=EVENTS_PER_REQUEST
    )


class EventsHookView(APIView):
    """Record product events (idempotent on `source_key`); their domains are rescored once and
    open pages hear the new scores. Answers {"received", "recorded"} (replays not counted)."""

    authentication_classes = [PlatformHookAuthentication]
    permission_classes = [HookTokenRequired]
    throttle_classes = [EventsHookThrottle]

    @extend_schema(exclude=True)  # the platform's own hook, not the workspace API
    def post(self, request: Request) -> Response:
        batch = ProductEventsSerializer(data=request.data)
        batch.is_valid(raise_exception=True)
        result = events_record(
            events=[ProductEvent(**event) for event in batch.validated_data["events"]]
        )
        return Response({"received": result.received, "recorded": result.recorded})
