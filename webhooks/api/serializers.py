from rest_framework import serializers

from webhooks.models import DeliveryState, EventType, WebhookDelivery, WebhookEndpoint

EVENTS_HELP = (
    "Event types to receive; empty (or left out) means every type, including types added "
    "later. One of: " + ", ".join(f"`{value}`" for value in EventType.values) + "."
)


class EndpointSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    workspace = serializers.CharField(source="workspace.public_id", read_only=True)
    events = serializers.ListField(child=serializers.CharField(), help_text=EVENTS_HELP)
    consecutive_failures = serializers.IntegerField(
        read_only=True,
        help_text="Deliveries given up in a row since the last success; at 5 the endpoint is "
        "disabled and the owners are emailed.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "workspace",
            "url",
            "description",
            "events",
            "active",
            "disabled_reason",
            "disabled_at",
            "consecutive_failures",
            "created_at",
        ]
        read_only_fields = fields


class EndpointCreatedSerializer(EndpointSerializer):
    secret = serializers.CharField(
        help_text="The signing secret (`whsec_...`): shown here once; owners and admins can "
        "view it again on the Webhooks page."
    )

    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class EndpointCreateSerializer(serializers.Serializer):
    url = serializers.CharField(
        max_length=2000, help_text="Where events are POSTed: an https:// URL on a public host."
    )
    events = serializers.ListField(
        child=serializers.CharField(max_length=40), required=False, default=list,
        help_text=EVENTS_HELP,
    )  # fmt: skip
    description = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default=""
    )
    workspace = serializers.CharField(
        required=False, help_text="The workspace's public id (a token's own when left out)."
    )


class EndpointUpdateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000, required=False)
    events = serializers.ListField(
        child=serializers.CharField(max_length=40), required=False, help_text=EVENTS_HELP
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    active = serializers.BooleanField(
        required=False,
        help_text="`true` turns a disabled endpoint back on (its failure count starts over); "
        "`false` stops sending to it.",
    )


class AttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    at = serializers.DateTimeField()
    status_code = serializers.IntegerField(allow_null=True, help_text="Null: no answer.")
    error = serializers.CharField(allow_blank=True)
    response_excerpt = serializers.CharField(allow_blank=True)
    duration_ms = serializers.IntegerField()


class DeliverySerializer(serializers.ModelSerializer):
    state = serializers.ChoiceField(
        choices=DeliveryState.choices,
        help_text="`failed`: the last attempt failed and another is scheduled at "
        "`next_attempt_at`; `gave_up`: 24 hours of failures (or the endpoint was disabled).",
    )
    attempt_log = AttemptSerializer(many=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "event_id",
            "event_type",
            "state",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "response_excerpt",
            "payload",
            "created_at",
            "delivered_at",
            "attempt_log",
        ]
        read_only_fields = fields
