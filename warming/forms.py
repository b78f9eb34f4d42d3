from django import forms

from warming.models import REPLY_RATE_RANGE
from warming.schedule import MAX_TARGET


class WarmupSettingsForm(forms.Form):
    target = forms.IntegerField(
        min_value=1, max_value=MAX_TARGET, label="Warm-up messages a day, once ramped"
    )
    reply_rate = forms.IntegerField(
        min_value=REPLY_RATE_RANGE[0],
        max_value=REPLY_RATE_RANGE[1],
        label="Reply rate (%)",
        help_text="Share of received warm-up messages answered, 15 to 30 %.",
    )
    weekdays_only = forms.BooleanField(required=False, label="Weekdays only")
    prewarmed = forms.BooleanField(
        required=False,
        label="Pre-warmed (imported with a sending history)",
        help_text="Ramps faster and stays at 30 a day or less while warming.",
    )
    paused = forms.BooleanField(required=False, label="Pause warm-up")
    tag = forms.CharField(max_length=40, required=False, label="Your label")
    window_start = forms.TimeField(
        label="Working day starts", widget=forms.TimeInput(attrs={"type": "time"})
    )
    window_end = forms.TimeField(
        label="Working day ends", widget=forms.TimeInput(attrs={"type": "time"})
    )
    time_zone = forms.CharField(max_length=64, label="Time zone", help_text="e.g. Europe/Paris")
