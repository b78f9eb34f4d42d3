"""Pages for sending domains and mailboxes; every view is scoped to one workspace.

A service's refusal (ApplicationError) raised here becomes a message on the page the user came
from (config.middleware.ApplicationErrorMiddleware); only forms catch it, to put it beside the
fields it names."""

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.decorators import workspace_view
from accounts.http import WorkspaceRequest
from accounts.models import Role
from config.errors import ApplicationError
from config.forms import form_add_refusal
from reputation import selectors as reputation_selectors
from sending import selectors
from sending.forms import DomainForm, DomainSendingForm, MailboxForm, MailboxSettingsForm
from sending.models import ConnectionType, DomainStatus, Mailbox, SendingDomain, SendsThrough
from sending.services.connection import mailbox_test_connection
from sending.services.dkim import dkim_rotation_start
from sending.services.dns import domain_records
from sending.services.domains import domain_create, domain_retire, domain_sending_change
from sending.services.mailboxes import (
    mailbox_create,
    mailbox_delete,
    mailbox_pause,
    mailbox_resume,
    mailbox_update,
    mailbox_warmup_steps,
)
from sending.services.oauth import grant_testing_mode, oauth_providers_offered
from sending.services.verification import domain_missing, domain_verify

DEMO_CHECK = "Demo domain: its DNS is not really published, so checks change nothing."


def _domain_or_404(request: WorkspaceRequest, public_id: str) -> SendingDomain:
    domain = selectors.domain_get(workspace=request.workspace, public_id=public_id)
    if domain is None:
        raise Http404("No such domain.")
    return domain


def _can_manage(request: WorkspaceRequest) -> bool:
    return request.membership.has_role(Role.ADMIN)


@workspace_view()
def domains(request: WorkspaceRequest) -> HttpResponse:
    form = DomainForm(request.POST or None)
    if request.method == "POST":
        if not _can_manage(request):
            raise PermissionDenied
        if form.is_valid():
            try:
                domain = domain_create(
                    workspace=request.workspace,
                    actor=request.user,
                    name=form.cleaned_data["name"],
                    sends_through=form.cleaned_data["sends_through"] or SendsThrough.PLATFORM,
                )
            except ApplicationError as error:
                form_add_refusal(form, error)
            else:
                added = f"{domain.name} added. Publish the records below."
                if domain.own_servers:
                    added += " You can connect its mailboxes already: warm-up starts once the "
                    added += "domain is verified."
                messages.success(request, added)
                return redirect("domain_detail", request.workspace.public_id, domain.public_id)
    return render(
        request,
        "sending/domains.html",
        {
            "form": form,
            "domains": selectors.domain_list(workspace=request.workspace),
            "can_manage": _can_manage(request),
        },
    )


def _domain_context(request: WorkspaceRequest, domain: SendingDomain) -> dict[str, Any]:
    results = {(r["kind"], r.get("selector", "")): r for r in domain.dns_results}
    rows = [
        {"record": record, "result": results.get((record.kind, record.selector))}
        for record in domain_records(domain)
    ]
    return {
        "domain": domain,
        "rows": rows,
        "missing": domain_missing(domain),
        "keys": list(domain.dkim_keys.all()),
        "can_manage": _can_manage(request),
        "demo_note": DEMO_CHECK,
    }


def _reputation_context(domain: SendingDomain) -> dict[str, Any]:
    return {
        "rep": reputation_selectors.domain_reputation(domain),
        "actions": reputation_selectors.domain_actions(domain),
    }


@workspace_view()
def domain_detail(request: WorkspaceRequest, domain_id: str) -> HttpResponse:
    """The domain's page; a POST changes how it sends (its records are checked again)."""
    domain = _domain_or_404(request, domain_id)
    form = DomainSendingForm(request.POST or None, initial={"sends_through": domain.sends_through})
    if request.method == "POST":
        if not _can_manage(request):
            raise PermissionDenied
        if form.is_valid():
            choice = form.cleaned_data["sends_through"] or domain.sends_through
            try:
                verification = domain_sending_change(
                    domain=domain, actor=request.user, sends_through=choice
                )
            except ApplicationError as error:
                form_add_refusal(form, error)
            else:
                domain = verification.domain
                how = (
                    "through its own mail servers" if domain.own_servers else "through the platform"
                )
                if verification.verified:
                    outcome = "Its records check out: it can send."
                elif domain.status == DomainStatus.PENDING_DNS:
                    outcome = "Its records were checked again: see below what is still missing."
                else:
                    outcome = f"It is {domain.get_status_display().lower()}."
                messages.success(request, f"{domain.name} now sends {how}. {outcome}")
                return redirect("domain_detail", request.workspace.public_id, domain.public_id)
    context = {
        **_domain_context(request, domain),
        **_reputation_context(domain),
        "sending_form": form,
    }
    return render(request, "sending/domain_detail.html", context)


@workspace_view()
def domain_reputation(request: WorkspaceRequest, domain_id: str) -> HttpResponse:
    """The live reputation card (re-fetched by HTMX when a score event arrives)."""
    domain = _domain_or_404(request, domain_id)
    context = {"domain": domain, **_reputation_context(domain)}
    return render(request, "reputation/partials/domain_reputation.html", context)


@workspace_view()
@require_POST
def domain_check(request: WorkspaceRequest, domain_id: str) -> HttpResponse:
    """Check the records now; HTMX swaps the record table, a plain POST reloads the page."""
    domain = _domain_or_404(request, domain_id)
    verification = domain_verify(domain=domain, actor=request.user)
    if domain.is_demo:
        messages.info(request, DEMO_CHECK)
    elif verification.verified:
        messages.success(request, f"{domain.name} is verified and can send.")
    if not request.htmx:
        return redirect("domain_detail", request.workspace.public_id, domain.public_id)
    domain = _domain_or_404(request, domain_id)
    return render(request, "sending/partials/domain_records.html", _domain_context(request, domain))


@workspace_view(min_role=Role.ADMIN)
@require_POST
def domain_rotate_dkim(request: WorkspaceRequest, domain_id: str) -> HttpResponse:
    domain = _domain_or_404(request, domain_id)
    if domain.own_servers:
        raise ApplicationError(
            f"{domain.name} sends through its own mail servers: its provider signs its mail, so "
            "there is no platform DKIM key to rotate.",
            code="domain_own_servers",
        )
    key = dkim_rotation_start(domain=domain, actor=request.user)
    messages.success(
        request,
        f"New DKIM key {key.selector} created. Publish its record beside the current one; "
        "we switch to it once it checks out.",
    )
    return redirect("domain_detail", request.workspace.public_id, domain.public_id)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def domain_remove(request: WorkspaceRequest, domain_id: str) -> HttpResponse:
    domain = _domain_or_404(request, domain_id)
    domain_retire(domain=domain, actor=request.user)
    messages.success(request, f"{domain.name} was removed; its mailboxes stopped sending.")
    return redirect("domains", request.workspace.public_id)


def _mailbox_or_404(request: WorkspaceRequest, mailbox_id: int) -> Mailbox:
    mailbox = selectors.mailbox_get(workspace=request.workspace, pk=mailbox_id)
    if mailbox is None:
        raise Http404("No such mailbox.")
    return mailbox


@workspace_view()
def mailboxes(request: WorkspaceRequest) -> HttpResponse:
    open_domains = list(selectors.domain_list_for_mailboxes(workspace=request.workspace))
    form = MailboxForm(request.POST or None, domains=open_domains)
    if request.method == "POST":
        if not _can_manage(request):
            raise PermissionDenied
        if form.is_valid():
            domain = next(d for d in open_domains if d.public_id == form.cleaned_data["domain"])
            try:
                mailbox = mailbox_create(domain=domain, actor=request.user, data=form.cleaned_data)
            except ApplicationError as error:
                form_add_refusal(form, error)
            else:
                if mailbox.is_connected:
                    added = f"{mailbox.address} added."
                else:
                    added = (
                        f"{mailbox.address} added. Run Test connection to connect it: it "
                        "sends and warms up once both servers accept the login."
                    )
                if not domain.can_send:
                    added += f" Warm-up also waits for {domain.name} to be verified."
                messages.success(request, added)
                return redirect("mailbox_detail", request.workspace.public_id, mailbox.pk)
    return render(
        request,
        "sending/mailboxes.html",
        {
            "form": form,
            "mailboxes": selectors.mailbox_list(workspace=request.workspace),
            "verified_domains": open_domains,
            "can_manage": _can_manage(request),
            "oauth_providers": oauth_providers_offered(),
        },
    )


def _warmup_context(mailbox: Mailbox) -> dict[str, Any]:
    """The warm-up card: every step, and the ones warm-up still waits for."""
    steps = mailbox_warmup_steps(mailbox)
    return {"steps": steps, "waiting_for": [s for s in steps if s.blocking and not s.done]}


@workspace_view()
def mailbox_detail(request: WorkspaceRequest, mailbox_id: int) -> HttpResponse:
    mailbox = _mailbox_or_404(request, mailbox_id)
    grant = mailbox.oauth_grant
    form = MailboxSettingsForm(
        request.POST or None,
        initial=MailboxSettingsForm.initial_for(mailbox),
        # An OAuth mailbox's servers and login come from its provider: nothing to edit there.
        connection=ConnectionType.PLATFORM if grant else mailbox.connection,
    )
    if request.method == "POST":
        if not _can_manage(request):
            raise PermissionDenied
        if form.is_valid():
            was_connected = mailbox.is_connected
            try:
                mailbox = mailbox_update(
                    mailbox=mailbox, actor=request.user, data=form.cleaned_data
                )
            except ApplicationError as error:
                form_add_refusal(form, error)
            else:
                if was_connected and not mailbox.is_connected:
                    messages.success(
                        request,
                        "Mailbox saved. Its server settings changed: run Test connection again "
                        "to connect it.",
                    )
                else:
                    messages.success(request, "Mailbox saved.")
                return redirect("mailbox_detail", request.workspace.public_id, mailbox.pk)
    return render(
        request,
        "sending/mailbox_detail.html",
        {
            "mailbox": mailbox,
            "grant": grant,
            "testing_mode": grant is not None and grant_testing_mode(grant),
            "form": form,
            "can_manage": _can_manage(request),
            **_warmup_context(mailbox),
        },
    )


@workspace_view(min_role=Role.ADMIN)
@require_POST
def mailbox_test(request: WorkspaceRequest, mailbox_id: int) -> HttpResponse:
    """Test connection; HTMX swaps the connection card, a plain POST reloads the page."""
    mailbox = _mailbox_or_404(request, mailbox_id)
    results = mailbox_test_connection(mailbox=mailbox)
    mailbox.refresh_from_db()
    if mailbox.is_connected:
        messages.success(request, f"{mailbox.address} is connected: both servers accept it.")
    else:
        messages.error(request, f"{mailbox.address} is not connected. {mailbox.connection_error}")
    if not request.htmx:
        return redirect("mailbox_detail", request.workspace.public_id, mailbox.pk)
    return render(
        request,
        "sending/partials/connection_results.html",
        {"mailbox": mailbox, "results": results, "can_manage": True, **_warmup_context(mailbox)},
    )


@workspace_view(min_role=Role.ADMIN)
@require_POST
def mailbox_status(request: WorkspaceRequest, mailbox_id: int) -> HttpResponse:
    mailbox = _mailbox_or_404(request, mailbox_id)
    action = request.POST.get("action")
    if action == "pause":
        mailbox_pause(mailbox=mailbox, actor=request.user, reason="Paused by you.")
        messages.success(request, f"{mailbox.address} paused.")
    elif action == "resume":
        mailbox_resume(mailbox=mailbox, actor=request.user, reason="Resumed by you.")
        messages.success(request, f"{mailbox.address} sends again.")
    elif action == "delete":
        mailbox_delete(mailbox=mailbox, actor=request.user)
        messages.success(request, f"{mailbox.address} deleted.")
        return redirect("mailboxes", request.workspace.public_id)
    else:
        raise ApplicationError("Unknown action.")
    return redirect("mailbox_detail", request.workspace.public_id, mailbox.pk)
