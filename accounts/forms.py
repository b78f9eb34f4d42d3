from typing import Any

from allauth.account.forms import SignupForm as AllauthSignupForm
from django import forms
from django.http import HttpRequest

from accounts.models import Invitation, Role, User


class SignupForm(AllauthSignupForm):
    full_name = forms.CharField(max_length=150, required=False, label="Your name")
    workspace_name = forms.CharField(
        max_length=120,
        required=False,
        label="Workspace name",
        help_text="Your company or client. Leave empty if you were invited to a workspace.",
    )
    field_order = ["full_name", "email", "password1", "password2", "workspace_name"]

    def save(self, request: HttpRequest) -> User:
        from accounts.services import workspace_create

        user = super().save(request)
        if self.cleaned_data.get("full_name"):
            user.full_name = self.cleaned_data["full_name"]
            user.save(update_fields=["full_name"])
        name = self.cleaned_data.get("workspace_name", "").strip()
        invited = Invitation.objects.filter(
            email__iexact=user.email, accepted_at__isnull=True, revoked_at__isnull=True
        ).exists()
        if name or not invited:
            workspace_create(owner=user, name=name or "My workspace")
        return user


class WorkspaceForm(forms.Form):
    name = forms.CharField(max_length=120)


class InvitationForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=80, help_text="What the token is for, e.g. 'CRM sync'.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The settings page also shows WorkspaceForm, whose `name` would take `id_name` too:
        # distinct ids let each label, error and help text find its own input.
        kwargs.setdefault("auto_id", "id_token_%s")
        super().__init__(*args, **kwargs)
