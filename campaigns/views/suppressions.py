"""Pages: the suppression lists (the workspace's addresses and blocked domains, the platform's
list read-only with an address check), CSV import with live progress, and the CSV export.

Any member may add entries and import; taking an entry off needs an owner or admin (the
services check it too). A refusal is shown beside the field it concerns."""

import csv
from collections.abc import Iterator
from typing import Any, cast

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import workspace_view
from accounts.http import WorkspaceRequest
from accounts.models import Role
from campaigns.forms.suppressions import (
    DomainBlockForm,
    RemoveConfirmForm,
    SuppressionAddForm,
    SuppressionCheckForm,
    SuppressionImportForm,
)
from campaigns.models import ImportState, LeadImport
from campaigns.selectors import suppressions as selectors
from campaigns.services.suppressions import (
    CONSENT_REASONS,
    suppressed_domain_block,
    suppressed_domain_unblock,
    suppression_add,
    suppression_import_create,
    suppression_remove,
)
from config.errors import ApplicationError
from config.forms import form_add_refusal

PER_PAGE = 50
TABS = ("addresses", "domains", "platform", "import")


class _Echo:
    """A file-like object whose write returns the line, for csv.writer in a streamed reply."""

    def write(self, value: str) -> str:
        return value


def _as_view_response(response: StreamingHttpResponse) -> HttpResponse:
    # `workspace_view` is typed for HttpResponse; Django serves any HttpResponseBase alike.
    return cast(HttpResponse, response)


def _can_manage(request: WorkspaceRequest) -> bool:
    return request.membership.has_role(Role.ADMIN)


def _url(request: WorkspaceRequest, tab: str = "addresses") -> str:
    return reverse("suppressions", args=[request.workspace.public_id]) + f"?tab={tab}"


def _page(
    request: WorkspaceRequest, tab: str, *, status: int = 200, **forms_given: forms.Form
) -> HttpResponse:
    workspace = request.workspace
    search = request.GET.get("q", "").strip()[:320] if tab in ("addresses", "domains") else ""
    context: dict[str, Any] = {
        "tab": tab,
        "tabs": TABS,
        "search": search,
        "can_manage": _can_manage(request),
        "counts": selectors.suppression_counts(workspace=workspace),
        "add_form": forms_given.get("add_form") or SuppressionAddForm(),
        "domain_form": forms_given.get("domain_form") or DomainBlockForm(),
        "import_form": forms_given.get("import_form") or SuppressionImportForm(),
        "consent_reasons": CONSENT_REASONS,
    }
    if tab == "addresses":
        rows = selectors.suppression_list(workspace=workspace, search=search)
        context["page"] = Paginator(rows, PER_PAGE).get_page(request.GET.get("page"))
    elif tab == "domains":
        rows_d = selectors.suppressed_domain_list(workspace=workspace, search=search)
        context["page"] = Paginator(rows_d, PER_PAGE).get_page(request.GET.get("page"))
    elif tab == "platform":
        platform = selectors.suppressed_domain_list(workspace=None)
        context["page"] = Paginator(platform, PER_PAGE).get_page(request.GET.get("page"))
        check_form = SuppressionCheckForm(request.GET if "address" in request.GET else None)
        if check_form.is_bound and check_form.is_valid():
            try:
                context["check"] = selectors.suppression_check(
                    workspace=workspace, address=check_form.cleaned_data["address"]
                )
            except ValueError as error:
                check_form.add_error("address", f"Not an email address: {error}")
        context["check_form"] = check_form
    else:
        context["imports"] = selectors.suppression_import_list(workspace=workspace)
    return render(request, "campaigns/suppressions/page.html", context, status=status)


@workspace_view()
@require_GET
def suppressions(request: WorkspaceRequest) -> HttpResponse:
    tab = request.GET.get("tab", "addresses")
    return _page(request, tab if tab in TABS else "addresses")


@workspace_view()
@require_POST
def suppression_create(request: WorkspaceRequest) -> HttpResponse:
    form = SuppressionAddForm(request.POST)
    if form.is_valid():
        try:
            added = suppression_add(
                workspace=request.workspace,
                actor=request.user,
                address=form.cleaned_data["address"],
                source=form.cleaned_data["note"],
            )
        except ApplicationError as error:
            form_add_refusal(form, error)
        else:
            row = added.row
            if added.created:
                text = f"{row.address} is on your suppression list: it is never emailed again."
                if added.stopped:
                    text += f" {added.stopped} waiting campaign step(s) to it stopped."
                messages.success(request, text)
            else:
                since = f"{row.created_at:%d %b %Y}"
                reason = row.get_reason_display().lower()
                messages.info(
                    request, f"{row.address} was already on the list ({reason}, {since})."
                )
            return redirect(_url(request, "addresses"))
    return _page(request, "addresses", status=400, add_form=form)


@workspace_view(min_role=Role.ADMIN)
def suppression_remove_confirm(request: WorkspaceRequest, pk: int) -> HttpResponse:
    """Take an address off the list; an unsubscribe or complaint asks for confirmation first."""
    row = selectors.suppression_get(workspace=request.workspace, pk=pk)
    if row is None:
        raise Http404("No such entry on your suppression list.")
    form = RemoveConfirmForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            suppression_remove(
                suppression=row, actor=request.user, confirmed=form.cleaned_data["confirm"]
            )
        except ApplicationError as error:
            form_add_refusal(form, error)
        else:
            messages.success(
                request, f"{row.address} is off your suppression list and may be emailed again."
            )
            return redirect(_url(request, "addresses"))
    status = 400 if form.errors else 200
    context = {"row": row, "form": form, "needs_consent": row.reason in CONSENT_REASONS}
    return render(request, "campaigns/suppressions/remove.html", context, status=status)


@workspace_view()
@require_POST
def suppressed_domain_create(request: WorkspaceRequest) -> HttpResponse:
    form = DomainBlockForm(request.POST)
    if form.is_valid():
        try:
            added = suppressed_domain_block(
                workspace=request.workspace,
                actor=request.user,
                domain=form.cleaned_data["domain"],
                reason=form.cleaned_data["reason"],
            )
        except ApplicationError as error:
            form_add_refusal(form, error)
        else:
            name = added.row.domain
            if added.created:
                text = f"{name} is blocked: nobody at it is emailed."
                if added.stopped:
                    text += f" {added.stopped} waiting campaign step(s) to it stopped."
                messages.success(request, text)
            else:
                messages.info(request, f"{name} was already blocked.")
            return redirect(_url(request, "domains"))
    return _page(request, "domains", status=400, domain_form=form)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def suppressed_domain_remove(request: WorkspaceRequest, pk: int) -> HttpResponse:
    row = selectors.suppressed_domain_get(workspace=request.workspace, pk=pk)
    if row is None:
        raise Http404("No such blocked domain.")
    suppressed_domain_unblock(suppressed_domain=row, actor=request.user)
    messages.success(request, f"{row.domain} is no longer blocked.")
    return redirect(_url(request, "domains"))


@workspace_view()
@require_POST
def suppression_import(request: WorkspaceRequest) -> HttpResponse:
    form = SuppressionImportForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            job = suppression_import_create(
                workspace=request.workspace, actor=request.user, upload=form.cleaned_data["file"]
            )
        except ApplicationError as error:
            form_add_refusal(form, error)
        else:
            return redirect("suppression_import_status", request.workspace.public_id, job.public_id)
    return _page(request, "import", status=400, import_form=form)


def _import_or_404(request: WorkspaceRequest, import_id: str) -> LeadImport:
    job = selectors.suppression_import_get(workspace=request.workspace, public_id=import_id)
    if job is None:
        raise Http404("No such import.")
    return job


@workspace_view()
@require_GET
def suppression_import_status(request: WorkspaceRequest, import_id: str) -> HttpResponse:
    """The import's progress and result; HTMX polls the card while it runs."""
    job = _import_or_404(request, import_id)
    running = job.state in (ImportState.QUEUED, ImportState.RUNNING)
    context = {"job": job, "running": running}
    if request.htmx:
        return render(request, "campaigns/suppressions/import_status.html", context)
    return render(request, "campaigns/suppressions/import.html", context)


@workspace_view()
@require_GET
def suppression_import_problems(request: WorkspaceRequest, import_id: str) -> HttpResponse:
    """The import's summary as CSV: its counts, then each problem with its line."""
    job = _import_or_404(request, import_id)
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(["line", "problem"])
        for problem in job.problems:
            yield writer.writerow([problem.get("line", ""), problem.get("message", "")])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    name = f"suppression-import-{job.public_id}-problems.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return _as_view_response(response)


@workspace_view()
@require_GET
def suppression_export(request: WorkspaceRequest) -> HttpResponse:
    """The workspace's addresses and blocked domains as CSV, streamed row by row."""
    writer = csv.writer(_Echo())
    rows = selectors.suppression_export_rows(workspace=request.workspace)

    def lines() -> Iterator[str]:
        yield writer.writerow(selectors.EXPORT_HEADER)
        for row in rows:
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    name = f"suppressions-{request.workspace.public_id}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return _as_view_response(response)


pages: list[URLPattern] = [
    path("suppressions/", suppressions, name="suppressions"),
    path("suppressions/addresses/", suppression_create, name="suppression_create"),
    path(
        "suppressions/addresses/<int:pk>/remove/",
        suppression_remove_confirm,
        name="suppression_remove",
    ),
    path("suppressions/domains/", suppressed_domain_create, name="suppressed_domain_create"),
    path(
        "suppressions/domains/<int:pk>/unblock/",
        suppressed_domain_remove,
        name="suppressed_domain_unblock",
    ),
    path("suppressions/import/", suppression_import, name="suppression_import"),
    path(
        "suppressions/import/<str:import_id>/",
        suppression_import_status,
        name="suppression_import_status",
    ),
    path(
        "suppressions/import/<str:import_id>/problems.csv",
        suppression_import_problems,
        name="suppression_import_problems",
    ),
    path("suppressions/export.csv", suppression_export, name="suppression_export"),
]
