"""The Warming page: every mailbox's figure for today and why, its next 14 days, its settings."""

from django.conf import settings as django_settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.decorators import workspace_view
from accounts.http import WorkspaceRequest
from accounts.models import Role
from config.errors import ApplicationError
from config.forms import form_add_refusal
from reputation.selectors import domain_rehab
from sending.models import DomainStatus, SendingDomain
from warming.forms import WarmupSettingsForm
from warming.selectors import (
    inbox_placement,
    local_today,
    mailbox_plan,
    warming_activity,
    warming_mailboxes,
    warming_overview,
    warming_task_list,
    warmup_settings_for,
)
from warming.services import WarmupChoices, warmup_settings_update
from warming.services.by_hand import warming_task_do


@workspace_view()
def warming(request: WorkspaceRequest) -> HttpResponse:
    plans = warming_overview(workspace=request.workspace)
    placement = inbox_placement(workspace=request.workspace)
    domains = {plan.mailbox.domain_id: plan.mailbox.domain.name for plan in plans}
    return render(
        request,
        "warming/warming.html",
        {
            "plans": [(plan, placement.by_mailbox.get(plan.mailbox.pk)) for plan in plans],
            "placement": placement,
            "domain_placement": [
                (name, placement.by_domain[pk])
                for pk, name in sorted(domains.items(), key=lambda item: item[1])
                if pk in placement.by_domain
            ],
            "activity": warming_activity(workspace=request.workspace),
        },
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
    plan = mailbox_plan(mailbox, settings, local_today(settings))
    return render(request, "warming/mailbox.html", {"plan": plan, "form": form})


@workspace_view()
def warming_tasks(request: WorkspaceRequest) -> HttpResponse:
    """Rehabilitation warm-up messages to do by hand, and each demoted domain's meter."""
    now = timezone.now()
    return render(
        request,
        "warming/tasks.html",
        {
            "tasks": warming_task_list(workspace=request.workspace),
            "domains": [
                (domain, domain_rehab(domain, now))
                for domain in SendingDomain.objects.filter(
                    workspace=request.workspace, tier="rehab"
                ).exclude(status=DomainStatus.RETIRED)
            ],
            "hold_hours": django_settings.WARMUP_TASK_HOLD_HOURS,
        },
    )


@workspace_view()
@require_POST
def warming_task(request: WorkspaceRequest, send_id: int) -> HttpResponse:
    try:
        done = warming_task_do(
            workspace=request.workspace,
            actor=request.user,
            send_id=send_id,
            reply=request.POST.get("reply") == "1",
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        what = ["rescued from spam"] if done.rescued else []
        what += ["opened", *(["answered"] if done.replied else []), "filed away"]
        messages.success(
            request,
            f"Done: {', '.join(what)}. +{done.credits} credit{'s' if done.credits != 1 else ''}.",
        )
    return redirect("warming_tasks", request.workspace.public_id)
