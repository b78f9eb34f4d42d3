"""Page forms. Mailbox fields come from sending.mailbox_fields and are checked there (by the
services): the forms only shape the page and carry the values."""

from typing import Any

from django import forms

from sending.mailbox_fields import FIELDS, SERVER_KEYS, FieldSpec
from sending.models import ConnectionType, DomainStatus, SendingDomain, SendsThrough

SENDS_THROUGH_HELP = (
    "Your own mail servers: mailboxes at Google Workspace, Microsoft 365 or any SMTP/IMAP "
    "host, connected as external mailboxes. The domain needs ownership, DMARC and its own SPF "
    "record; its DKIM is confirmed from the first warm-up message. Through the platform: our "
    "MTA sends and signs, so the domain also publishes our SPF include and DKIM key."
)


def _sends_through_field() -> forms.ChoiceField:
    return forms.ChoiceField(
        label="How it sends",
        choices=SendsThrough.choices,
        initial=SendsThrough.PLATFORM,
        required=False,  # empty: through the platform, as before the choice existed
        widget=forms.RadioSelect,
        help_text=SENDS_THROUGH_HELP,
    )


class DomainForm(forms.Form):
    # No max_length: the name rules answer an over-long name with the DNS limit in words.
    name = forms.CharField(
        label="Domain name",
        widget=forms.TextInput(attrs={"placeholder": "example.com", "autocomplete": "off"}),
    )
    sends_through = _sends_through_field()


class DomainSendingForm(forms.Form):
    """Change how a domain sends (its records are checked again for the new way)."""

    sends_through = _sends_through_field()


def _form_field(spec: FieldSpec, *, password_label: str = "") -> forms.Field:
    common: dict[str, Any] = {"label": spec.label, "help_text": spec.help, "required": False}
    attrs = {"placeholder": spec.placeholder} if spec.placeholder else {}
    if spec.kind == "bool":
        return forms.BooleanField(**common)
    if spec.kind == "choice":
        return forms.ChoiceField(choices=[("", "Choose ..."), *spec.choices], **common)
    if spec.kind == "int":
        attrs.update(inputmode="numeric", pattern="[0-9]*")
        return forms.CharField(widget=forms.TextInput(attrs=attrs), **common)
    if spec.kind == "password":
        # Kept on a failed submit, so a typo elsewhere does not cost the customer the password.
        widget = forms.PasswordInput(render_value=True, attrs={"autocomplete": "new-password"})
        return forms.CharField(widget=widget, **{**common, "label": password_label or spec.label})
    return forms.CharField(widget=forms.TextInput(attrs=attrs), **common)


class MailboxFieldsForm(forms.Form):
    """Groups for the templates: the mailbox's own fields, then SMTP, then IMAP."""

    def group(self, name: str) -> list[forms.BoundField]:
        return [
            self[spec.name] for spec in FIELDS if spec.group == name and spec.name in self.fields
        ]

    @property
    def mailbox_group(self) -> list[forms.BoundField]:
        return [f for f in self.group("mailbox") if f.name != "warmup_enabled"]

    @property
    def smtp_group(self) -> list[forms.BoundField]:
        return self.group("smtp")

    @property
    def imap_group(self) -> list[forms.BoundField]:
        return self.group("imap")


class MailboxForm(MailboxFieldsForm):
    """Add a mailbox: the address, its settings and (external) its servers."""

    domain = forms.ChoiceField(label="Domain")
    local_part = forms.CharField(
        max_length=64,
        label="Address (before the @)",
        widget=forms.TextInput(attrs={"placeholder": "alex"}),
    )
    connection = forms.ChoiceField(
        choices=ConnectionType.choices, initial=ConnectionType.PLATFORM, widget=forms.RadioSelect
    )

    def __init__(
        self, *args: Any, domains: list[SendingDomain] | tuple = (), **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        domain_field = self.fields["domain"]
        assert isinstance(domain_field, forms.ChoiceField)
        domain_field.choices = [
            (
                d.public_id,
                d.name if d.status == DomainStatus.VERIFIED else f"{d.name} (waiting for DNS)",
            )
            for d in domains
        ]
        for spec in FIELDS:
            self.fields[spec.name] = _form_field(spec)
        self.fields["daily_limit"].initial = 40
        self.fields["warmup_enabled"].initial = True


class MailboxSettingsForm(MailboxFieldsForm):
    """Change a mailbox; for an external one also its servers (passwords: empty keeps)."""

    def __init__(self, *args: Any, connection: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for spec in FIELDS:
            if spec.group != "mailbox" and connection != ConnectionType.EXTERNAL:
                continue
            self.fields[spec.name] = _form_field(
                spec, password_label="New password" if spec.kind == "password" else ""
            )
        self.fields["daily_limit"].required = True

    @staticmethod
    def initial_for(mailbox: Any) -> dict[str, Any]:
        names = ["display_name", "daily_limit", "warmup_enabled"] + [
            f"{prefix}_{key}"
            for prefix in ("smtp", "imap")
            for key in SERVER_KEYS
            if key != "password"
        ]
        return {name: getattr(mailbox, name) for name in names}
