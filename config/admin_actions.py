"""State changes in the operations console: an admin action lists the rows it will change on a
confirmation page and asks why; the reason goes to the service, which records it in the audit
log with the staff member as the actor. Rows such actions change are read-only in their forms."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_permission_codename
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from config.errors import ApplicationError

SHOWN_ROWS = 50  # the confirmation page names this many rows, then counts the rest


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80, "autofocus": True}),
        error_messages={
            "required": "Give a reason: it is recorded in the audit log. Nothing was changed."
        },
    )


@dataclass(frozen=True)
class Outcome:
    """What a service made of one row, when the console should say more than "done"."""

    text: str
    level: int = messages.SUCCESS


# (row, staff user, reason) -> an Outcome to show, or anything else (then the row counts as done)
RowCall = Callable[[Any, Any, str], object]
Rows = Callable[[QuerySet[Any]], QuerySet[Any]]


class ReasonedAction:
    """An admin action that asks for a reason, then applies `call` to each row.

    `rows` maps the selection to the rows the service acts on (a domain's mailboxes, say, or
    only the sources not pulled yet); `done` completes "<n> ..." in the success message;
    `nothing` is said when no selected row needs the action; `note` sits under the reason box
    (who will read the reason)."""

    allowed_permissions = ("operate",)
    # A subclass may ask for more than the reason: its form, its page, and `call_row`.
    form_class: type[ReasonForm] = ReasonForm
    template = "admin/action_reason.html"

    def __init__(
        self,
        *,
        name: str,
        description: str,
        done: str,
        call: RowCall,
        rows: Rows | None = None,
        nothing: str = "None of the selected rows needs this.",
        note: str = "The reason is recorded in the audit log with your name.",
    ) -> None:
        self.__name__ = name
        self.short_description = description
        self.done, self.call, self.rows, self.nothing, self.note = done, call, rows, nothing, note

    def targets(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return self.rows(queryset) if self.rows else queryset

    def __call__(
        self, modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]
    ) -> TemplateResponse | None:
        targets = self.targets(queryset)
        if not targets.exists():
            modeladmin.message_user(request, self.nothing, messages.WARNING)
            return None
        form = self.form_class(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            self._apply(modeladmin, request, targets, form.cleaned_data)
            return None
        return self._confirmation(modeladmin, request, queryset, targets, form)

    def call_row(self, row: Any, staff: Any, data: dict[str, Any]) -> object:
        return self.call(row, staff, data["reason"])

    def _confirmation(
        self,
        modeladmin: admin.ModelAdmin,
        request: HttpRequest,
        queryset: QuerySet[Any],
        targets: QuerySet[Any],
        form: ReasonForm,
    ) -> TemplateResponse:
        """The page that names what will change and asks why (posted back with `apply`)."""
        selected = list(queryset)
        same_rows = targets.model is queryset.model
        acted_on = {row.pk for row in targets} if same_rows else set()
        affected = [] if same_rows else list(targets[: SHOWN_ROWS + 1])
        request.current_app = modeladmin.admin_site.name
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": self.short_description,
            "opts": modeladmin.model._meta,
            "action_name": self.__name__,
            "action_description": self.short_description,
            "selected": [r for r in selected if not same_rows or r.pk in acted_on][:SHOWN_ROWS],
            "skipped": [r for r in selected if same_rows and r.pk not in acted_on][:SHOWN_ROWS],
            "selected_pks": [row.pk for row in selected],
            "more_selected": max(0, (len(acted_on) if same_rows else len(selected)) - SHOWN_ROWS),
            "affected": affected[:SHOWN_ROWS],
            "affected_opts": targets.model._meta,
            "more_affected": max(0, targets.count() - SHOWN_ROWS) if affected else 0,
            "nothing": self.nothing,
            "form": form,
            "note": self.note,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": modeladmin.media,
        }
        return TemplateResponse(request, self.template, context)

    def _apply(
        self,
        modeladmin: admin.ModelAdmin,
        request: HttpRequest,
        rows: QuerySet[Any],
        data: dict[str, Any],
    ) -> None:
        """Apply the service row by row: one refusal does not stop the others, each is shown."""
        counted = 0
        for row in rows:
            try:
                result = self.call_row(row, request.user, data)
            except ApplicationError as error:
                modeladmin.message_user(request, f"{row}: {error.message}", messages.ERROR)
                continue
            if isinstance(result, Outcome):
                modeladmin.message_user(request, result.text, result.level)
            else:
                counted += 1
        if counted:
            modeladmin.message_user(request, f"{counted} {self.done}.", messages.SUCCESS)


class ConsoleAdmin(admin.ModelAdmin):
    """Reasoned actions need the model's change permission (even where the form is a read-only
    view), and the ones that apply to a row are offered on its page too."""

    change_form_template = "admin/console_change_form.html"

    def has_operate_permission(self, request: HttpRequest) -> bool:
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}")

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        actions = [entry for entry in self.get_actions(request).values() if entry is not None]
        try:
            row = self.model._default_manager.filter(pk=unquote(object_id))
            row_actions = [
                (name, description)
                for func, name, description in actions
                if isinstance(func, ReasonedAction) and func.targets(row).exists()
            ]
        except (ValueError, ValidationError):  # a malformed id: the admin answers 404 itself
            row_actions = []
        extra_context = {**(extra_context or {}), "row_actions": row_actions}
        return super().change_view(request, object_id, form_url, extra_context)


class ServiceOwnedAdmin(ConsoleAdmin):
    """Rows that change only through services: the change page is a read-only view (so a POST
    cannot overwrite what a service wrote), and rows are neither added nor deleted here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False
