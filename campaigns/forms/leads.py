"""Forms of the lead pages: upload, column mapping, a lead, a list."""

from collections.abc import Sequence
from typing import Any

from django import forms

from campaigns.models import Lead, LeadList, LeadStatus
from campaigns.services.imports import CUSTOM_PREFIX, IMPORT_MAX_BYTES
from campaigns.services.leads import LEAD_FIELD_LABELS, custom_field_name

CUSTOM = "custom"
TARGET_CHOICES = [
    ("", "Ignore this column"),
    *LEAD_FIELD_LABELS.items(),
    (CUSTOM, "Custom field…"),
]
NEW_LIST = ""


class LeadImportUploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text=f"Up to {IMPORT_MAX_BYTES // 1024 // 1024} MB. The first line names the "
        "columns; one column holds the email address. Exports from Excel, Google Sheets and "
        "CRMs work as they are (any encoding; comma, semicolon or tab).",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.tsv,.txt,text/csv"}),
    )


class LeadImportMappingForm(forms.Form):
    """One choice per column (a lead field, a custom field by name, or ignored), the target
    list and what to do with role addresses."""

    lead_list = forms.ChoiceField(label="Add the leads to", required=False)
    new_list_name = forms.CharField(label="New list's name", required=False, max_length=120)
    role_addresses = forms.ChoiceField(
        label="Role addresses (info@, sales@ …)",
        choices=[
            ("flag", "Import them, flagged (campaign checks warn about them)"),
            ("skip", "Skip them"),
        ],
        initial="flag",
        widget=forms.RadioSelect,
    )

    def __init__(
        self,
        *args: Any,
        headers: Sequence[str],
        mapping: dict[str, str],
        lists: Sequence[LeadList],
        default_list_name: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.headers = list(headers)
        target_field = self.fields["lead_list"]
        assert isinstance(target_field, forms.ChoiceField)
        target_field.choices = [
            (NEW_LIST, "A new list"),
            *[(item.public_id, item.name) for item in lists],
        ]
        self.fields["new_list_name"].initial = default_list_name
        for index, header in enumerate(self.headers):
            target = mapping.get(str(index), "")
            custom = target.removeprefix(CUSTOM_PREFIX) if target.startswith(CUSTOM_PREFIX) else ""
            self.fields[f"column_{index}"] = forms.ChoiceField(
                label=header or f"Column {index + 1}",
                choices=TARGET_CHOICES,
                required=False,
                initial=CUSTOM if custom else target,
            )
            self.fields[f"custom_{index}"] = forms.CharField(
                label="Custom field name",
                required=False,
                max_length=60,
                initial=custom or custom_field_name(header),
            )

    def columns(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        return [(self[f"column_{i}"], self[f"custom_{i}"]) for i in range(len(self.headers))]

    def mapping(self) -> dict[str, str]:
        """Column index -> lead field, `custom:<name>` or "" (ignored)."""
        result = {}
        for index in range(len(self.headers)):
            target = self.cleaned_data.get(f"column_{index}", "")
            if target == CUSTOM:
                name = custom_field_name(self.cleaned_data.get(f"custom_{index}", ""))
                target = f"{CUSTOM_PREFIX}{name}"
            result[str(index)] = target
        return result

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("lead_list") == NEW_LIST and not (data.get("new_list_name") or "").strip():
            self.add_error("new_list_name", "Name the new list, or choose an existing one.")
        return data


class LeadListForm(forms.Form):
    name = forms.CharField(label="List name", max_length=120)


class LeadForm(forms.Form):
    first_name = forms.CharField(required=False, max_length=120)
    last_name = forms.CharField(required=False, max_length=120)
    company = forms.CharField(required=False, max_length=200)
    title = forms.CharField(label="Job title", required=False, max_length=200)
    phone = forms.CharField(required=False, max_length=60)
    website = forms.CharField(required=False, max_length=300)
    time_zone = forms.CharField(
        required=False,
        max_length=64,
        help_text="Like Europe/Berlin or America/New_York. Empty: the campaign's time zone.",
    )
    status = forms.ChoiceField(choices=LeadStatus.choices)
    out_of_office_until = forms.DateField(
        label="Out of office until",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="With the status “Out of office”: campaigns wait for this date.",
    )
    custom_fields = forms.CharField(
        label="Custom fields",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One per line, as name: value (e.g. industry: Logistics). Use them in "
        "templates as {{ industry }}.",
    )
    lists = forms.MultipleChoiceField(
        label="Lists", required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args: Any, lists: Sequence[LeadList], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lead_lists = {item.public_id: item for item in lists}
        lists_field = self.fields["lists"]
        assert isinstance(lists_field, forms.MultipleChoiceField)
        lists_field.choices = [(item.public_id, item.name) for item in lists]

    @staticmethod
    def initial_for(lead: Lead) -> dict[str, Any]:
        custom = "\n".join(f"{k}: {v}" for k, v in (lead.custom_fields or {}).items())
        return {
            **{name: getattr(lead, name) for name in LEAD_FIELD_LABELS if name != "email"},
            "status": lead.status,
            "out_of_office_until": lead.out_of_office_until,
            "custom_fields": custom,
            "lists": [item.public_id for item in lead.lists.all()],
        }

    def clean_custom_fields(self) -> dict[str, str]:
        result: dict[str, str] = {}
        for number, line in enumerate(self.cleaned_data["custom_fields"].splitlines(), start=1):
            if not line.strip():
                continue
            name, colon, value = line.partition(":")
            if not colon:
                raise forms.ValidationError(f"Line {number} has no colon: write it as name: value.")
            result[custom_field_name(name) or name.strip()] = value.strip()
        return result

    def data_for_service(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["lists"] = [self.lead_lists[key] for key in data.get("lists", [])]
        return data
