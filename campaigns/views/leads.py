"""Pages: the leads table and a lead, lists, and the CSV import (upload -> column mapping with a
preview -> live progress -> summary with its download).

Every member of a workspace works with its leads (importing and editing them is day-to-day
work, unlike domains and mailboxes). A refusal that names fields is shown beside them; any other
refusal becomes a message on the page (config.middleware.ApplicationErrorMiddleware)."""

from typing import cast

from django.contrib import messages
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import workspace_view
from accounts.http import WorkspaceRequest
from campaigns.forms.leads import (
    NEW_LIST,
    LeadForm,
    LeadImportMappingForm,
    LeadImportUploadForm,
    LeadListForm,
)
from campaigns.models import ImportState, Lead, LeadImport, LeadList, LeadStatus
from campaigns.selectors import leads as selectors
from campaigns.services.imports import (
    lead_import_preview,
    lead_import_start,
    lead_import_summary,
    lead_import_upload,
)
from campaigns.services.leads import (
    lead_delete,
    lead_list_create,
    lead_list_delete,
    lead_list_rename,
    lead_update,
)
from config.errors import ApplicationError
from config.forms import form_add_refusal

PAGE_SIZE = 50
ENCODING_NAMES = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8",
    "utf-16": "UTF-16",
    "utf-16-le": "UTF-16",
    "utf-16-be": "UTF-16",
    "cp1252": "Windows-1252 (Western European)",
}
POLL_SECONDS = 1


def _lead_or_404(request: WorkspaceRequest, lead_id: str) -> Lead:
    lead = selectors.lead_get(workspace=request.workspace, public_id=lead_id)
    if lead is None:
        raise Http404("No such lead.")
    return lead


def _list_or_404(request: WorkspaceRequest, list_id: str) -> LeadList:
    found = selectors.lead_list_get(workspace=request.workspace, public_id=list_id)
    if found is None:
        raise Http404("No such list.")
    return found


def _import_or_404(request: WorkspaceRequest, import_id: str) -> LeadImport:
    found = selectors.lead_import_get(workspace=request.workspace, public_id=import_id)
    if found is None:
        raise Http404("No such import.")
    return found


# --- Leads -------------------------------------------------------------------------------------


@workspace_view()
@require_GET
def leads(request: WorkspaceRequest) -> HttpResponse:
    """The leads table: search, list and status filters, pages without counting every row."""
    search = request.GET.get("q", "").strip()
    list_id = request.GET.get("list", "")
    status = request.GET.get("status", "")
    try:
        page = max(1, int(request.GET.get("page", "1")))
    except ValueError:
        page = 1
    found = selectors.lead_list(
        workspace=request.workspace, search=search, list_public_id=list_id, status=status
    )
    start = (page - 1) * PAGE_SIZE
    rows = list(found[start : start + PAGE_SIZE + 1])
    has_next = len(rows) > PAGE_SIZE
    filters = {k: v for k, v in (("q", search), ("list", list_id), ("status", status)) if v}

    def page_url(number: int) -> str:
        query: dict[str, str | int] = {**filters, "page": number}
        return "?" + urlencode(query)

    lists = list(selectors.lead_list_list(workspace=request.workspace))
    any_leads = bool(rows) or (
        bool(filters) and Lead.objects.filter(workspace=request.workspace).exists()
    )
    return render(
        request,
        "campaigns/leads/leads.html",
        {
            "leads": rows[:PAGE_SIZE],
            "lists": lists,
            "statuses": LeadStatus.choices,
            "search": search,
            "list_id": list_id,
            "status": status,
            "filtered": bool(filters),
            "any_leads": any_leads,
            "page": page,
            "first_row": start + 1,
            "last_row": start + len(rows[:PAGE_SIZE]),
            "previous_url": page_url(page - 1) if page > 1 else "",
            "next_url": page_url(page + 1) if has_next else "",
            "imports": list(selectors.lead_import_list(workspace=request.workspace, limit=3)),
        },
    )


@workspace_view()
def lead_detail(request: WorkspaceRequest, lead_id: str) -> HttpResponse:
    """A lead: its fields, custom fields, status, time zone, lists; its campaigns."""
    lead = _lead_or_404(request, lead_id)
    lists = list(selectors.lead_list_list(workspace=request.workspace))
    form = LeadForm(request.POST or None, initial=LeadForm.initial_for(lead), lists=lists)
    if request.method == "POST" and form.is_valid():
        try:
            lead_update(lead=lead, actor=request.user, data=form.data_for_service())
        except ApplicationError as error:
            form_add_refusal(form, error)
        else:
            messages.success(request, f"{lead.email} saved.")
            return redirect("lead_detail", request.workspace.public_id, lead.public_id)
    return render(
        request,
        "campaigns/leads/lead_detail.html",
        {
            "lead": lead,
            "form": form,
            "campaign_leads": list(selectors.lead_campaigns(lead=lead)),
        },
    )


@workspace_view()
@require_POST
def lead_remove(request: WorkspaceRequest, lead_id: str) -> HttpResponse:
    lead = _lead_or_404(request, lead_id)
    lead_delete(lead=lead, actor=request.user)
    messages.success(request, f"{lead.email} was deleted.")
    return redirect("leads", request.workspace.public_id)


# --- Lists -------------------------------------------------------------------------------------


@workspace_view()
def lead_lists(request: WorkspaceRequest) -> HttpResponse:
    """The lists with their sizes; a POST creates one."""
    form = LeadListForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = lead_list_create(
                workspace=request.workspace, actor=request.user, name=form.cleaned_data["name"]
            )
        except ApplicationError as error:
            form_add_refusal(form, error)
        else:
            messages.success(request, f"List “{created.name}” created.")
            return redirect("lead_lists", request.workspace.public_id)
    return render(
        request,
        "campaigns/leads/lists.html",
        {"form": form, "lists": list(selectors.lead_list_list(workspace=request.workspace))},
    )


@workspace_view()
@require_POST
def lead_list_rename_view(request: WorkspaceRequest, list_id: str) -> HttpResponse:
    found = _list_or_404(request, list_id)
    form = LeadListForm(request.POST)
    if not form.is_valid():
        raise ApplicationError("Give the list a name.")
    old = found.name
    lead_list_rename(lead_list=found, actor=request.user, name=form.cleaned_data["name"])
    messages.success(request, f"List “{old}” renamed to “{found.name}”.")
    return redirect("lead_lists", request.workspace.public_id)


@workspace_view()
@require_POST
def lead_list_delete_view(request: WorkspaceRequest, list_id: str) -> HttpResponse:
    found = _list_or_404(request, list_id)
    lead_list_delete(lead_list=found, actor=request.user)
    messages.success(request, f"List “{found.name}” deleted; its leads are still in Leads.")
    return redirect("lead_lists", request.workspace.public_id)


# --- Import ------------------------------------------------------------------------------------


@workspace_view()
def lead_import_new(request: WorkspaceRequest) -> HttpResponse:
    """Upload a CSV; then the mapping page."""
    form = LeadImportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = lead_import_upload(
                workspace=request.workspace, actor=request.user, upload=form.cleaned_data["file"]
            )
        except ApplicationError as error:
            form_add_refusal(form, error)
        else:
            return redirect("lead_import_detail", request.workspace.public_id, created.public_id)
    imports = [
        {
            "import": item,
            "skipped": sum(item.counts.get(key, 0) for key in ("invalid", "suppressed", "failed")),
        }
        for item in selectors.lead_import_list(workspace=request.workspace)
    ]
    return render(request, "campaigns/leads/import_new.html", {"form": form, "imports": imports})


def _default_list_name(lead_import: LeadImport) -> str:
    stem = lead_import.file_name.rsplit(".", 1)[0][:80] or "Import"
    return f"{stem} ({lead_import.created_at:%Y-%m-%d})"


@workspace_view()
def lead_import_detail(request: WorkspaceRequest, import_id: str) -> HttpResponse:
    """The import's one page: the mapping while it waits for it, then progress, then the
    summary."""
    lead_import = _import_or_404(request, import_id)
    if lead_import.state != ImportState.UPLOADED:
        return render(
            request,
            "campaigns/leads/import_detail.html",
            {"import": lead_import, "poll_seconds": POLL_SECONDS},
        )
    lists = list(selectors.lead_list_list(workspace=request.workspace))
    form = LeadImportMappingForm(
        request.POST or None,
        headers=lead_import.headers,
        mapping=lead_import.mapping.get("columns", {}),
        lists=lists,
        default_list_name=_default_list_name(lead_import),
    )
    if request.method == "POST" and form.is_valid():
        chosen = form.cleaned_data["lead_list"]
        target = None
        if chosen != NEW_LIST:
            target = next((item for item in lists if item.public_id == chosen), None)
        try:
            lead_import_start(
                lead_import=lead_import,
                actor=request.user,
                mapping=form.mapping(),
                lead_list=target,
                new_list_name="" if target else form.cleaned_data["new_list_name"],
                skip_role_addresses=form.cleaned_data["role_addresses"] == "skip",
            )
        except ApplicationError as error:
            form_add_refusal(form, error)
            if any(name in form.fields for name in error.fields):
                for problem in error.fields.get("mapping", []):
                    form.add_error(None, problem)
        else:
            return redirect("lead_import_detail", request.workspace.public_id, import_id)
    preview = lead_import_preview(lead_import=lead_import)
    columns = [
        {
            "header": header,
            "choice": choice,
            "custom": custom,
            "samples": [row.values[i] if i < len(row.values) else "" for row in preview.rows],
        }
        for i, ((choice, custom), header) in enumerate(
            zip(form.columns(), lead_import.headers, strict=True)
        )
    ]
    return render(
        request,
        "campaigns/leads/import_mapping.html",
        {
            "import": lead_import,
            "encoding": ENCODING_NAMES.get(lead_import.encoding, lead_import.encoding),
            "form": form,
            "preview": preview,
            "columns": columns,
        },
    )


@workspace_view()
@require_GET
def lead_import_progress(request: WorkspaceRequest, import_id: str) -> HttpResponse:
    """The progress card, polled by HTMX while the import runs; once it has finished, the
    page reloads into the summary."""
    lead_import = _import_or_404(request, import_id)
    response = render(
        request,
        "campaigns/leads/partials/import_progress.html",
        {"import": lead_import, "poll_seconds": POLL_SECONDS},
    )
    if lead_import.state in (ImportState.DONE, ImportState.FAILED) and request.htmx:
        response["HX-Refresh"] = "true"
    return response


@workspace_view()
@require_GET
def lead_import_summary_download(request: WorkspaceRequest, import_id: str) -> HttpResponse:
    """The summary CSV: one line per row of the file with its outcome and the reason."""
    lead_import = _import_or_404(request, import_id)
    if lead_import.state not in (ImportState.DONE, ImportState.FAILED):
        raise Http404("The summary is ready once the import has finished.")
    stem = lead_import.file_name.rsplit(".", 1)[0][:80] or "import"
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem)
    response = StreamingHttpResponse(
        lead_import_summary(lead_import=lead_import), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{safe}-summary.csv"'
    # `workspace_view` is typed for HttpResponse; Django serves any HttpResponseBase alike.
    return cast(HttpResponse, response)


pages: list[URLPattern] = [
    path("leads/", leads, name="leads"),
    path("leads/lists/", lead_lists, name="lead_lists"),
    path("leads/lists/<str:list_id>/rename/", lead_list_rename_view, name="lead_list_rename"),
    path("leads/lists/<str:list_id>/delete/", lead_list_delete_view, name="lead_list_delete"),
    path("leads/import/", lead_import_new, name="lead_import_new"),
    path("leads/import/<str:import_id>/", lead_import_detail, name="lead_import_detail"),
    path(
        "leads/import/<str:import_id>/progress/",
        lead_import_progress,
        name="lead_import_progress",
    ),
    path(
        "leads/import/<str:import_id>/summary.csv",
        lead_import_summary_download,
        name="lead_import_summary",
    ),
    path("leads/<str:lead_id>/", lead_detail, name="lead_detail"),
    path("leads/<str:lead_id>/delete/", lead_remove, name="lead_delete"),
]
