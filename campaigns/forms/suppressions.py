"""Forms of the suppressions page. The services check the values (normal forms, own domains);
the forms only shape the page, and a refusal is put beside the field it names."""

from django import forms

ADDRESS_WIDGET = forms.TextInput(
    attrs={"placeholder": "name@company.com", "autocomplete": "off", "inputmode": "email"}
)


class SuppressionAddForm(forms.Form):
    # No EmailField: the service's address rules give the reason a person can act on.
    address = forms.CharField(label="Email address", max_length=320, widget=ADDRESS_WIDGET)
    note = forms.CharField(
        label="Note (optional)",
        max_length=120,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "Where it came from, or why"}),
    )


class DomainBlockForm(forms.Form):
    domain = forms.CharField(
        label="Domain",
        max_length=400,
        widget=forms.TextInput(attrs={"placeholder": "competitor.com", "autocomplete": "off"}),
    )
    reason = forms.CharField(
        label="Reason (optional)",
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "A competitor, a customer ..."}),
    )


class SuppressionImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="One address or domain a row: a column named “email” or “domain” (or a single "
        "column of either), and optionally a “reason” column.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,text/csv"}),
    )


class SuppressionCheckForm(forms.Form):
    address = forms.CharField(label="Email address", max_length=320, widget=ADDRESS_WIDGET)


class RemoveConfirmForm(forms.Form):
    confirm = forms.BooleanField(
        label="This person agreed again to hear from us",
        required=False,
    )
