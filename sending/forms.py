from django import forms

from sending.models import ConnectionType, TlsMode


class DomainForm(forms.Form):
    name = forms.CharField(
        max_length=300,
        label="Domain name",
        widget=forms.TextInput(attrs={"placeholder": "example.com", "autocomplete": "off"}),
    )


class MailboxForm(forms.Form):
    """Shapes the page; the service validates and decides."""

    domain = forms.ChoiceField(label="Domain")
    local_part = forms.CharField(max_length=64, label="Address (before the @)")
    display_name = forms.CharField(max_length=120, required=False, label="Sender name")
    connection = forms.ChoiceField(
        choices=ConnectionType.choices, initial=ConnectionType.PLATFORM, widget=forms.RadioSelect
    )
    daily_limit = forms.IntegerField(min_value=1, initial=40, label="Daily limit")
    warmup_enabled = forms.BooleanField(required=False, initial=True, label="Enrol in warm-up")
    smtp_host = forms.CharField(max_length=253, required=False, label="SMTP host")
    smtp_port = forms.IntegerField(required=False, label="SMTP port")
    smtp_security = forms.ChoiceField(
        choices=TlsMode.choices, required=False, label="SMTP security"
    )
    smtp_username = forms.CharField(max_length=254, required=False, label="SMTP username")
    smtp_password = forms.CharField(
        max_length=1024, required=False, label="SMTP password", widget=forms.PasswordInput
    )
    imap_host = forms.CharField(max_length=253, required=False, label="IMAP host")
    imap_port = forms.IntegerField(required=False, label="IMAP port")
    imap_security = forms.ChoiceField(
        choices=TlsMode.choices, required=False, label="IMAP security"
    )
    imap_username = forms.CharField(max_length=254, required=False, label="IMAP username")
    imap_password = forms.CharField(
        max_length=1024, required=False, label="IMAP password", widget=forms.PasswordInput
    )

    def __init__(self, *args, domains=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["domain"].choices = [(d.public_id, d.name) for d in domains]


class MailboxSettingsForm(forms.Form):
    display_name = forms.CharField(max_length=120, required=False, label="Sender name")
    daily_limit = forms.IntegerField(min_value=1, label="Daily limit")
    warmup_enabled = forms.BooleanField(required=False, label="Enrol in warm-up")
    smtp_password = forms.CharField(
        max_length=1024, required=False, label="New SMTP password", widget=forms.PasswordInput
    )
    imap_password = forms.CharField(
        max_length=1024, required=False, label="New IMAP password", widget=forms.PasswordInput
    )
