from typing import Any

from rest_framework import serializers

from sending.mailbox_fields import FIELDS, FieldSpec
from sending.models import ConnectionType, Mailbox, SendingDomain, TlsMode


class DomainSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True, help_text="Also the MTA tenant.")
    workspace = serializers.CharField(source="workspace.public_id", read_only=True)
    dkim_selector = serializers.SerializerMethodField()

    class Meta:
        model = SendingDomain
        fields = [
            "id",
            "workspace",
            "name",
            "display_name",
            "status",
            "status_reason",
            "provider",
            "dkim_selector",
            "verified_at",
            "dns_checked_at",
            "cooldown_until",
            "is_demo",
            "created_at",
        ]
        read_only_fields = fields

    def get_dkim_selector(self, domain: SendingDomain) -> str | None:
        active = [k for k in domain.dkim_keys.all() if k.state == "active"]
        return active[0].selector if active else None


class DomainCreateSerializer(serializers.Serializer):
    name = serializers.CharField(
        help_text="The domain name (checked by the service: at most 253 characters)."
    )
    workspace = serializers.CharField(
        required=False, help_text="Workspace public id (not needed with a token)."
    )


class DnsRecordSerializer(serializers.Serializer):
    kind = serializers.CharField()
    host = serializers.CharField()
    type = serializers.CharField()
    value = serializers.CharField()
    # DRF's metaclass moves declared fields off the class; the stubs see Field.required.
    required = serializers.BooleanField()  # type: ignore[assignment]
    purpose = serializers.CharField()
    selector = serializers.CharField(allow_blank=True)


class CheckResultSerializer(serializers.Serializer):
    kind = serializers.CharField()
    host = serializers.CharField()
    type = serializers.CharField()
    expected = serializers.CharField()
    # DRF's metaclass moves declared fields off the class; the stubs see Field.required.
    required = serializers.BooleanField()  # type: ignore[assignment]
    status = serializers.ChoiceField(choices=["pass", "fail", "error", "warn", "info"])
    code = serializers.CharField()
    message = serializers.CharField()
    found = serializers.ListField(child=serializers.CharField())
    selector = serializers.CharField(allow_blank=True)


class VerificationSerializer(serializers.Serializer):
    status = serializers.CharField()
    verified = serializers.BooleanField()
    demo = serializers.BooleanField(
        help_text="A demo domain: its DNS is not really published, so checks change nothing."
    )
    results = CheckResultSerializer(many=True)


class MailboxSerializer(serializers.ModelSerializer):
    domain = serializers.CharField(source="domain.public_id", read_only=True)
    is_connected = serializers.BooleanField(
        read_only=True,
        help_text="Platform mailboxes always; an external one once its connection test passed.",
    )
    warmup_status = serializers.ChoiceField(
        choices=["enrolled", "waiting_for_connection_test", "off"],
        read_only=True,
        help_text="An external mailbox enrolled in warm-up waits for a passing connection test.",
    )

    # Blank for platform mailboxes (no servers of their own): part of the documented values.
    smtp_security = serializers.ChoiceField(
        choices=TlsMode.choices, allow_blank=True, read_only=True
    )
    imap_security = serializers.ChoiceField(
        choices=TlsMode.choices, allow_blank=True, read_only=True
    )

    class Meta:
        model = Mailbox
        fields = [
            "id",
            "address",
            "domain",
            "local_part",
            "display_name",
            "connection",
            "provider",
            "daily_limit",
            "status",
            "status_reason",
            "cooldown_until",
            "warmup_enabled",
            "warmup_status",
            "smtp_host",
            "smtp_port",
            "smtp_security",
            "smtp_username",
            "imap_host",
            "imap_port",
            "imap_security",
            "imap_username",
            "is_connected",
            "connection_ok",
            "connection_checked_at",
            "connection_error",
            "created_at",
        ]
        read_only_fields = fields


def _api_field(spec: FieldSpec) -> serializers.Field:
    """The shape of one mailbox field; its rules are checked by the shared parser."""
    common: dict[str, Any] = {"required": False, "help_text": spec.help or spec.label}
    if spec.kind == "bool":
        return serializers.BooleanField(**common)
    if spec.kind == "int":
        return serializers.IntegerField(allow_null=True, **common)
    if spec.kind == "choice":
        return serializers.ChoiceField(choices=spec.choices, allow_blank=True, **common)
    return serializers.CharField(
        allow_blank=True, trim_whitespace=False, write_only=spec.kind == "password", **common
    )


class MailboxWriteSerializer(serializers.Serializer):
    """Create (POST) or change (PATCH: only the fields given) a mailbox. Passwords are
    write-only: they are never returned; an empty password keeps the stored one."""

    domain = serializers.CharField(required=False, help_text="Sending domain id (create only).")
    local_part = serializers.CharField(required=False, help_text="Create only.")
    connection = serializers.ChoiceField(
        choices=ConnectionType.choices, required=False, help_text="Create only."
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields.update({spec.name: _api_field(spec) for spec in FIELDS})
        return fields


class ConnectionResultSerializer(serializers.Serializer):
    server = serializers.CharField()
    ok = serializers.BooleanField()
    reason = serializers.CharField()
    message = serializers.CharField()
    folders = serializers.ListField(child=serializers.CharField())
