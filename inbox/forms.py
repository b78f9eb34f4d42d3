"""Forms of the inbox pages. The services check the values; a refusal is put beside the field
it names."""

from django import forms

from inbox.models import ReplyKind


class ReplySendForm(forms.Form):
    body = forms.CharField(
        label="Your answer",
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 6, "placeholder": "Write your answer…"}),
    )


class LabelForm(forms.Form):
    name = forms.CharField(
        label="Label name",
        max_length=60,
        widget=forms.TextInput(
            attrs={"placeholder": "e.g. Follow up in Q3", "autocomplete": "off"}
        ),
    )


class InboxFilterForm(forms.Form):
    """The list's filters as the query string carries them (ids checked against the workspace
    by the view)."""

    campaign = forms.CharField(required=False, max_length=32)
    mailbox = forms.IntegerField(required=False, min_value=1)
    label = forms.IntegerField(required=False, min_value=1)
    kind = forms.ChoiceField(required=False, choices=[("", "All kinds"), *ReplyKind.choices])
    unread = forms.BooleanField(required=False)
    page = forms.IntegerField(required=False, min_value=1, max_value=10_000)
