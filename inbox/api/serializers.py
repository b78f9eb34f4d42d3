"""Shapes of the inbox API: replies (with their labels and where they came from), labels, the
writes and the answer sent."""

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from inbox.models import Reply, ReplyLabel
from sending.models import Message


class ReplyLabelSerializer(serializers.ModelSerializer):
    workspace = serializers.CharField(source="workspace.public_id", read_only=True)
    system = serializers.CharField(
        read_only=True, help_text="The built-in label's code, or empty for your own."
    )

    class Meta:
        model = ReplyLabel
        fields = ["id", "workspace", "name", "system", "created_at"]
        read_only_fields = fields


class ReplyLabelWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=60)
    workspace = serializers.CharField(
        required=False, help_text="The workspace's public id (a token's own when left out)."
    )


class _LabelBrief(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    system = serializers.CharField()


class ReplySerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    workspace = serializers.CharField(source="workspace.public_id", read_only=True)
    mailbox = serializers.SerializerMethodField()
    campaign = serializers.SerializerMethodField()
    lead = serializers.SerializerMethodField()
    labels = serializers.SerializerMethodField()
    read = serializers.SerializerMethodField()

    class Meta:
        model = Reply
        fields = [
            "id",
            "workspace",
            "kind",
            "from_address",
            "from_name",
            "subject",
            "text",
            "received_at",
            "mailbox",
            "campaign",
            "lead",
            "labels",
            "read",
            "read_at",
            "returns_on",
            "bounce_hard",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_mailbox(self, reply: Reply) -> str | None:
        return reply.mailbox.address if reply.mailbox is not None else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_campaign(self, reply: Reply) -> str | None:
        return reply.campaign.public_id if reply.campaign is not None else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_lead(self, reply: Reply) -> str | None:
        return reply.lead.public_id if reply.lead is not None else None

    @extend_schema_field(_LabelBrief(many=True))
    def get_labels(self, reply: Reply) -> list[dict[str, Any]]:
        return [{"id": lb.pk, "name": lb.name, "system": lb.system} for lb in reply.labels.all()]

    @extend_schema_field(serializers.BooleanField())
    def get_read(self, reply: Reply) -> bool:
        return reply.read_at is not None


class ReplyPatchSerializer(serializers.Serializer):
    labels = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        max_length=50,
        help_text="The reply's labels afterwards (ids): those not given are taken off.",
    )
    read = serializers.BooleanField(required=False)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if not data:
            raise serializers.ValidationError(
                {"non_field_errors": ["Give `labels`, `read` or both."]}
            )
        return data


class ReplySendSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=20_000, help_text="The answer's plain text.")


class SentAnswerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = ["message_id", "sender", "recipient", "subject", "state", "created_at"]
        read_only_fields = fields
