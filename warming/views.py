"""The Warming page: every mailbox's figure for today and why, its next 14 days, its settings."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from accounts.decorators import workspace_view
from accounts.http import WorkspaceRequest
from accounts.models import Role
from config.errors import ApplicationError
from config.forms import form_add_refusal
from warming.forms import WarmupSettingsForm
from warming.selectors import mailbox_plan, warming_mailboxes, warming_overview, warmup_settings_for
from warming.services import WarmupChoices, warmup_settings_update


@workspace_view()
def warming(request: WorkspaceRequest) -> HttpResponse:
    plans = warming_overview(workspace=request.workspace)
    return render(
        request,
        "warming/warming.html",
        {"plans": plans, "days": plans[0].days if plans else []},
    )


@workspace_view()
def warming_mailbox(request: WorkspaceRequest, mailbox_id: int) -> HttpResponse:
    mailbox = warming_mailboxes(workspace=request.workspace).filter(pk=mailbox_id).first()
    if mailbox is None:
        raise Http404("No such mailbox.")
    settings = warmup_settings_for(mailbox)
    initial = {field: getattr(settings, field) for field in WarmupChoices.__dataclass_fields__}
    form = WarmupSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST":
        if not request.membership.has_role(Role.ADMIN):
            raise PermissionDenied
        if form.is_valid():
            try:
                warmup_settings_update(
                    mailbox=mailbox, actor=request.user, choices=WarmupChoices(**form.cleaned_data)
                )
            except ApplicationError as error:
                form_add_refusal(form, error)
            else:
                messages.success(request, f"Warm-up settings of {mailbox.address} saved.")
                return redirect("warming_mailbox", request.workspace.public_id, mailbox.pk)
    plan = mailbox_plan(mailbox, settings, timezone.localdate())
    return render(request, "warming/mailbox.html", {"plan": plan, "form": form})
