"""Pages for CSV imports of external mailboxes: upload with past imports, then one page per
import that polls its progress (HTMX) and ends with the outcome of every row."""

from django import forms
from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from accounts.decorators import workspace_view
from accounts.http import WorkspaceRequest
from accounts.models import Role
from config.errors import ApplicationError
from config.forms import form_add_refusal
from sending.models import MailboxImport, MailboxImportStatus
from sending.selectors import mailbox_ids_existing, mailbox_import_get, mailbox_import_list
from sending.services.mailbox_import import (
    IMPORT_MAX_BYTES,
    mailbox_import_example,
    mailbox_import_start,
)

POLL_SECONDS = 2
RECENT_IMPORTS = 20


class MailboxImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text=f"Up to {IMPORT_MAX_BYTES // 1024 // 1024} MB. Line 1 names the columns, one "
        "mailbox per line below it.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.tsv,.txt,text/csv"}),
    )


def _import_or_404(request: WorkspaceRequest, import_id: int) -> MailboxImport:
    found = mailbox_import_get(workspace=request.workspace, pk=import_id)
    if found is None:
        raise Http404("No such import.")
    return found


@workspace_view(min_role=Role.ADMIN)
def mailbox_import_new(request: WorkspaceRequest) -> HttpResponse:
    """Upload a CSV of mailboxes; then its progress page."""
    form = MailboxImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            started = mailbox_import_start(
                workspace=request.workspace, actor=request.user, upload=form.cleaned_data["file"]
            )
        except ApplicationError as error:
            form_add_refusal(form, error)
        else:
            return redirect("mailbox_import_detail", request.workspace.public_id, started.pk)
    imports = mailbox_import_list(workspace=request.workspace)[:RECENT_IMPORTS]
    return render(
        request,
        "sending/mailbox_import_new.html",
        {"form": form, "imports": imports, "max_rows": settings.MAILBOX_IMPORT_MAX_ROWS},
    )


@workspace_view(min_role=Role.ADMIN)
def mailbox_import_detail(request: WorkspaceRequest, import_id: int) -> HttpResponse:
    """The import's page; HTMX polls it for the status block while the import runs."""
    job = _import_or_404(request, import_id)
    ids = [r["mailbox"] for r in job.results if r.get("mailbox")]
    existing = mailbox_ids_existing(workspace=request.workspace, ids=ids) if ids else set()
    rows = [{**r, "exists": r.get("mailbox") in existing} for r in job.results]
    context = {
        "import": job,
        "rows": rows,
        "running": job.status in (MailboxImportStatus.QUEUED, MailboxImportStatus.RUNNING),
        "poll_seconds": POLL_SECONDS,
    }
    if request.htmx:
        return render(request, "sending/partials/mailbox_import_status.html", context)
    return render(request, "sending/mailbox_import_detail.html", context)


@workspace_view(min_role=Role.ADMIN)
@require_GET
def mailbox_import_example_csv(request: WorkspaceRequest) -> HttpResponse:
    """An example file with every column, to fill in."""
    response = HttpResponse(mailbox_import_example(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="mailboxes-example.csv"'
    return response
