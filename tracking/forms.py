from django import forms


class TrackingDomainForm(forms.Form):
    hostname = forms.CharField(
        label="Hostname",
        max_length=253,
        help_text="A subdomain of your own domain, such as track.yourcompany.com.",
        widget=forms.TextInput(
            attrs={"placeholder": "track.yourcompany.com", "spellcheck": "false"}
        ),
    )
