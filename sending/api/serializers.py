from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sending.mailbox_fields import FIELDS, FieldSpec
from sending.models import (
    ConnectionType,
    DkimState,
    DomainStatus,
    Mailbox,
    MailboxGrant,
    SendingDomain,
    SendsThrough,
    TlsMode,
)
from sending.services.verification import domain_missing

SENDS_THROUGH_HELP = (
    "`platform`: our MTA sends and signs; the domain publishes the platform's SPF include and "
    "DKIM key. `own_servers`: its mailboxes are external (Google Workspace, Microsoft 365, any "
    "SMTP/IMAP host); the domain needs ownership, DMARC and its own valid SPF, and its DKIM is "
    "confirmed from the first warm-up message."
)


class DkimObservationSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    ok = serializers.BooleanField()
    code = serializers.CharField()
    reason = serializers.CharField()
    selector = serializers.CharField(allow_blank=True)
    signing_domain = serializers.CharField(allow_blank=True)
    authentication_results = serializers.ListField(child=serializers.CharField())


class DomainDkimSerializer(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=DkimState.choices,
        help_text="`platform_key`: the platform's key, checked in DNS. Own servers: `pending` "
        "until the first warm-up message is read, then `confirmed` (for good) or `failed` (the "
        "latest message did not pass; the next one is checked again).",
    )
    confirmed_at = serializers.DateTimeField(allow_null=True)
    selector = serializers.CharField(allow_blank=True)
    authentication_results = serializers.CharField(
        allow_blank=True, help_text="The receiving server's Authentication-Results, one a line."
    )
    last_observation = DkimObservationSerializer(allow_null=True)


class MissingSerializer(serializers.Serializer):
    kind = serializers.CharField()
    name = serializers.CharField()
    message = serializers.CharField()


class DomainSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True, help_text="Also the MTA tenant.")
    workspace = serializers.CharField(source="workspace.public_id", read_only=True)
    dkim_selector = serializers.SerializerMethodField()
    sends_through = serializers.ChoiceField(
        choices=SendsThrough.choices, read_only=True, help_text=SENDS_THROUGH_HELP
    )
    dkim = serializers.SerializerMethodField()
    missing = serializers.SerializerMethodField(
        help_text="What keeps a domain waiting for DNS from verifying, as of its last check."
    )

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
            "sends_through",
            "dkim_selector",
            "dkim",
            "missing",
            "verified_at",
            "dns_checked_at",
            "cooldown_until",
            "is_demo",
            "created_at",
        ]
        read_only_fields = fields

    def get_dkim_selector(self, domain: SendingDomain) -> str | None:
        """The platform key that signs; null for a domain that sends through its own servers."""
        if domain.own_servers:
            return None
        active = [k for k in domain.dkim_keys.all() if k.state == "active"]
        return active[0].selector if active else None

    @extend_schema_field(DomainDkimSerializer)
    def get_dkim(self, domain: SendingDomain) -> dict[str, Any]:
        return {
            "state": domain.dkim_state,
            "confirmed_at": domain.dkim_confirmed_at,
            "selector": domain.dkim_confirmed_selector,
            "authentication_results": domain.dkim_confirmed_auth_results,
            "last_observation": domain.dkim_last_observation or None,
        }

    @extend_schema_field(MissingSerializer(many=True))
    def get_missing(self, domain: SendingDomain) -> list[dict[str, str]]:
        return [m.as_dict() for m in domain_missing(domain)]


class DomainCreateSerializer(serializers.Serializer):
    name = serializers.CharField(
        help_text="The domain name (checked by the service: at most 253 characters)."
    )
    workspace = serializers.CharField(
        required=False, help_text="Workspace public id (not needed with a token)."
    )
    sends_through = serializers.ChoiceField(
        choices=SendsThrough.choices,
        default=SendsThrough.PLATFORM,
        help_text=SENDS_THROUGH_HELP,
    )


class DomainUpdateSerializer(serializers.Serializer):
    sends_through = serializers.ChoiceField(
        choices=SendsThrough.choices,
        help_text=SENDS_THROUGH_HELP + " Changing it checks the records again at once and starts "
        "the DKIM confirmation over.",
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


class MailboxGrantSerializer(serializers.ModelSerializer):
    """How a Google or Microsoft mailbox signs in (OAuth); its tokens are never returned."""

    class Meta:
        model = MailboxGrant
        fields = [
            "provider",
            "status",
            "problem",
            "connected_at",
            "access_expires_at",
            "refresh_expires_at",
        ]
        read_only_fields = fields


class MailboxSerializer(serializers.ModelSerializer):
    domain = serializers.CharField(source="domain.public_id", read_only=True)
    oauth = MailboxGrantSerializer(
        source="oauth_grant",
        read_only=True,
        allow_null=True,
        help_text="Set when the mailbox signs in with Google or Microsoft (Connect with ... on "
        "the Mailboxes page) instead of a password; `status` revoked means it needs a reconnect.",
    )
    is_connected = serializers.BooleanField(
        read_only=True,
        help_text="Platform mailboxes always; an external one once its connection test passed.",
    )
    warmup_status = serializers.SerializerMethodField(
        help_text="An external mailbox enrolled in warm-up waits for a passing connection test; "
        "any mailbox waits for its domain's verification (an external mailbox may be added to "
        "a domain that sends through its own servers before its DNS checks out)."
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
            "oauth",
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

    @extend_schema_field(
        serializers.ChoiceField(
            choices=[
                "enrolled",
                "waiting_for_connection_test",
                "waiting_for_domain_verification",
                "off",
            ]
        )
    )
    def get_warmup_status(self, mailbox: Mailbox) -> str:
        status = mailbox.warmup_status
        if status == "enrolled" and mailbox.domain.status == DomainStatus.PENDING_DNS:
            return "waiting_for_domain_verification"
        return status


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
