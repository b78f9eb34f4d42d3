from rest_framework import serializers

from reputation.models import Event, EventKind
from reputation.rehab import RehabState


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
    state = serializers.ChoiceField(
        choices=[state.value for state in RehabState],
        help_text="new: too few messages for a first score; rehab: demoted, earning its way "
        "back; cooldown: out of rotation until a date; unverified: no score until the DNS "
        "records are verified; quarantine: lifted by staff; not_needed: sending externally.",
    )
    done = serializers.IntegerField(
        help_text="rehab/cooldown: clean warm-up messages since `since`; new: messages sent "
        "toward the first score."
    )
    remaining = serializers.IntegerField(
        allow_null=True,
        help_text="Messages still needed, recomputed from the current window; null when no "
        "number of messages gets there.",
    )
    percent = serializers.IntegerField(
        allow_null=True,
        help_text="done / (done + remaining), rounded down (100 only when nothing remains); "
        "null when there is no meter.",
    )
    since = serializers.DateTimeField(
        allow_null=True, help_text="When rehabilitation began (rehab and cooldown only)."
    )
    summary = serializers.CharField(allow_blank=True, help_text="The numbers in one sentence.")
    explanation = serializers.CharField(allow_blank=True, help_text="Why, in plain words.")
    target_score = serializers.FloatField(help_text="The score that unlocks external sending.")
    score_unlock = serializers.IntegerField(
        allow_null=True,
        help_text="rehab/cooldown: clean internal warming messages to reach the target score "
        "from the current window (also when above the practical maximum).",
    )
    bounce_dilution = serializers.IntegerField(
        allow_null=True, help_text="rehab/cooldown: clean sends to bring bounces to 1 %."
    )
    reachable = serializers.BooleanField()
    limit_score = serializers.FloatField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)
    progress = serializers.IntegerField(help_text="Same as `done` (kept for older clients).")


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
    rehab = RehabSerializer()
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
