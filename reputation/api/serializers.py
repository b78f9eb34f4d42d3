from rest_framework import serializers

from reputation.models import Event, EventKind


class WindowMetricsSerializer(serializers.Serializer):
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField()
    hard_bounces = serializers.IntegerField()
    complaints = serializers.IntegerField()
    replies = serializers.IntegerField()
    unique_opens = serializers.IntegerField()
    bounce_percent = serializers.FloatField()
    spam_percent = serializers.FloatField()
    reply_percent = serializers.FloatField()
    open_percent = serializers.FloatField()


class RehabSerializer(serializers.Serializer):
    bounce_dilution = serializers.IntegerField(help_text="Clean sends to bring bounces to 1 %.")
    score_unlock = serializers.IntegerField(
        allow_null=True, help_text="Clean internal warming messages to reach the promotion score."
    )
    reachable = serializers.BooleanField()
    limit_score = serializers.FloatField()
    reason = serializers.CharField(allow_blank=True)
    progress = serializers.IntegerField()
    percent = serializers.IntegerField()


class ActionSerializer(serializers.Serializer):
    at = serializers.DateTimeField(source="created_at")
    actor = serializers.CharField(source="actor_label")
    action = serializers.CharField()
    reason = serializers.CharField()
    after = serializers.JSONField()


class HistoryPointSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    score = serializers.FloatField(allow_null=True)
    tier = serializers.CharField()
    provisional = serializers.BooleanField()


class ReputationSerializer(serializers.Serializer):
    score = serializers.FloatField(allow_null=True)
    tier = serializers.CharField()
    provisional = serializers.BooleanField()
    verified = serializers.BooleanField()
    scoring_version = serializers.IntegerField()
    updated_at = serializers.DateTimeField(allow_null=True)
    window_days = serializers.IntegerField()
    metrics = WindowMetricsSerializer(allow_null=True)
    rehab = RehabSerializer(allow_null=True)
    history = HistoryPointSerializer(many=True)
    recent_actions = ActionSerializer(many=True)


class EventSerializer(serializers.ModelSerializer):
    domain = serializers.CharField(source="domain.public_id")
    mailbox = serializers.IntegerField(source="mailbox_id", allow_null=True)

    class Meta:
        model = Event
        fields = [
            "id",
            "domain",
            "mailbox",
            "kind",
            "recipient",
            "message_id",
            "message_kind",
            "classification",
            "detail",
            "occurred_at",
        ]


class EventFilterSerializer(serializers.Serializer):
    domain = serializers.CharField(required=False)
    kind = serializers.ChoiceField(choices=EventKind.choices, required=False)
    mailbox = serializers.IntegerField(required=False)
    recipient = serializers.CharField(required=False, max_length=320)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
