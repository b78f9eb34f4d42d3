"""Forms of the campaign pages. They shape the page and carry the values; the campaign services
decide what is allowed and name the fields they refuse, which the pages show beside them."""

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from django import forms
from django.utils import timezone

from campaigns.models import Campaign, OutOfOffice, StepVariant
from campaigns.window import HOLIDAY_COUNTRIES
from tracking.selectors import campaign_tracking_get

WEEKDAY_CHOICES = [
    (0, "Mon"),
    (1, "Tue"),
    (2, "Wed"),
    (3, "Thu"),
    (4, "Fri"),
    (5, "Sat"),
    (6, "Sun"),
]


def _zone_choices() -> list[tuple[str, str]]:
    zones = sorted(z for z in available_timezones() if "/" in z and not z.startswith("Etc/"))
    return [("UTC", "UTC"), *((zone, zone.replace("_", " ")) for zone in zones)]


ZONE_CHOICES = _zone_choices()


class CampaignCreateForm(forms.Form):
    name = forms.CharField(
        label="Campaign name",
        max_length=120,
        widget=forms.TextInput(attrs={"placeholder": "Q3 outreach to agencies"}),
    )


class CampaignSettingsForm(forms.Form):
    """Window, limits, schedule, mailboxes and lists of one campaign."""

    name = forms.CharField(label="Name", max_length=120)
    send_days = forms.TypedMultipleChoiceField(
        label="Sending days",
        choices=WEEKDAY_CHOICES,
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one day to send on."},
    )
    window_start = forms.TimeField(
        label="From", widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M")
    )
    window_end = forms.TimeField(
        label="Until", widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M")
    )
    time_zone = forms.ChoiceField(label="Campaign time zone", choices=ZONE_CHOICES)
    use_lead_time_zone = forms.BooleanField(
        label="Send in each lead's own time zone when we know it",
        required=False,
        help_text="A lead's zone is the one imported with it, or guessed from a country domain "
        "(.de, .co.uk ...); other leads use the campaign's zone.",
    )
    holiday_country = forms.ChoiceField(
        label="Skip the public holidays of",
        choices=[("", "No country (send on holidays)"), *HOLIDAY_COUNTRIES],
        required=False,
    )
    daily_limit = forms.IntegerField(
        label="Messages a day", min_value=1, help_text="All steps together, across the mailboxes."
    )
    daily_new_leads = forms.IntegerField(
        label="New leads a day",
        min_value=0,
        help_text="First messages a day; follow-ups always go first.",
    )
    stop_on_reply = forms.BooleanField(
        label="Stop a lead's sequence when it replies", required=False
    )
    stop_on_auto_reply = forms.BooleanField(
        label="Stop it on an automatic reply too",
        required=False,
        help_text='Off: an automatic answer ("thanks, we got your message") changes nothing.',
    )
    out_of_office = forms.ChoiceField(
        label="When a lead is out of office",
        choices=OutOfOffice.choices,
        help_text="The return date is read from the reply; without one the lead waits 7 days.",
    )
    provider_matching = forms.BooleanField(
        label="Provider matching",
        required=False,
        help_text="Gmail recipients from Google-hosted mailboxes, Outlook recipients from "
        "Microsoft-hosted ones, when one can send.",
    )
    track_opens = forms.BooleanField(
        label="Track opens",
        required=False,
        help_text="A tiny image in the HTML part; opens by privacy proxies and scanners are "
        "counted apart.",
    )
    track_clicks = forms.BooleanField(
        label="Track clicks",
        required=False,
        help_text="Links go through the platform (or your tracking domain) to where they point; "
        "the unsubscribe link is never changed.",
    )
    start_at = forms.DateTimeField(
        label="Start on",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
        help_text="Empty: start as soon as you launch. Read in the campaign's time zone.",
    )
    mailbox_ids = forms.TypedMultipleChoiceField(
        label="Mailboxes", coerce=int, required=False, widget=forms.CheckboxSelectMultiple
    )
    lead_list_ids = forms.TypedMultipleChoiceField(
        label="Lead lists", coerce=int, required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(
        self,
        *args: Any,
        mailbox_ids: list[int],
        lead_list_ids: list[int],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # The services check which mailboxes and lists may be used; the form only takes ids of
        # the workspace's own rows (anything else is "not one of the choices").
        for name, ids in (("mailbox_ids", mailbox_ids), ("lead_list_ids", lead_list_ids)):
            choice_field = self.fields[name]
            assert isinstance(choice_field, forms.TypedMultipleChoiceField)
            choice_field.choices = [(pk, str(pk)) for pk in ids]
        # A zone set through the API that the list leaves out stays selectable (and kept).
        zone = self.initial.get("time_zone")
        zone_field = self.fields["time_zone"]
        assert isinstance(zone_field, forms.ChoiceField)
        if zone and zone not in {value for value, _ in ZONE_CHOICES}:
            zone_field.choices = [(zone, zone), *ZONE_CHOICES]

    @staticmethod
    def initial_for(campaign: Campaign) -> dict[str, Any]:
        start_at = campaign.start_at
        if start_at is not None:
            start_at = timezone.localtime(start_at, _zone(campaign.time_zone)).replace(tzinfo=None)
        tracking = campaign_tracking_get(campaign=campaign)
        return {
            "name": campaign.name,
            "send_days": list(campaign.send_days),
            "window_start": campaign.window_start,
            "window_end": campaign.window_end,
            "time_zone": campaign.time_zone,
            "use_lead_time_zone": campaign.use_lead_time_zone,
            "holiday_country": campaign.holiday_country,
            "daily_limit": campaign.daily_limit,
            "daily_new_leads": campaign.daily_new_leads,
            "stop_on_reply": campaign.stop_on_reply,
            "stop_on_auto_reply": campaign.stop_on_auto_reply,
            "out_of_office": campaign.out_of_office,
            "provider_matching": campaign.provider_matching,
            "track_opens": tracking.opens,
            "track_clicks": tracking.clicks,
            "start_at": start_at,
            "mailbox_ids": [m.pk for m in campaign.mailboxes.all()],
            "lead_list_ids": [lst.pk for lst in campaign.lead_lists.all()],
        }

    def tracking_data(self) -> dict[str, bool]:
        return {
            "opens": bool(self.cleaned_data.get("track_opens")),
            "clicks": bool(self.cleaned_data.get("track_clicks")),
        }

    def settings_data(self) -> dict[str, Any]:
        """The cleaned values as the settings service takes them (start in the campaign zone)."""
        data = dict(self.cleaned_data)
        data.pop("track_opens", None)
        data.pop("track_clicks", None)
        start_at: datetime | None = data.get("start_at")
        if start_at is not None:
            naive = timezone.make_naive(start_at) if timezone.is_aware(start_at) else start_at
            data["start_at"] = naive.replace(tzinfo=_zone(data["time_zone"]))
        return data


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


class StepDelayForm(forms.Form):
    delay_days = forms.IntegerField(
        label="Wait (days)",
        min_value=0,
        max_value=365,
        help_text="Days after the previous step.",
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )


class NewStepForm(StepDelayForm):
    pass


class VariantForm(forms.Form):
    """One variant's subject and body; the service checks merge fields and spintax."""

    subject = forms.CharField(label="Subject", required=False, max_length=500)
    body = forms.CharField(
        label="Body",
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "true"}),
        error_messages={"required": "Write the message: the body cannot be empty."},
    )
    active = forms.BooleanField(label="Send this variant", required=False)

    @staticmethod
    def initial_for(variant: StepVariant) -> dict[str, Any]:
        return {"subject": variant.subject, "body": variant.body, "active": variant.active}


class LaunchForm(forms.Form):
    acknowledge_warnings = forms.BooleanField(
        label="I understand the warnings above and want to launch anyway", required=False
    )


class ResumeForm(forms.Form):
    acknowledge = forms.BooleanField(
        label="I have dealt with the cause and want to resume sending", required=False
    )
