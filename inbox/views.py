"""Pages: the unified inbox (every reply across mailboxes and campaigns, filtered, in two panes)
and one reply's thread, with label toggles, read state and the answer box (HTMX where it
helps); the workspace's labels.

Any member may read, label and answer replies; managing the workspace's own labels too (they
are shared words, not settings)."""

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import workspace_view
from accounts.http import WorkspaceRequest
from campaigns.models import Campaign
from config.errors import ApplicationError
from config.forms import form_add_refusal
from inbox.forms import InboxFilterForm, LabelForm, ReplySendForm
from inbox.models import Reply, ReplyKind, ReplyLabel
from inbox.selectors import (
    ANSWERABLE_KINDS,
    reply_answers,
    reply_filter_campaigns,
    reply_filter_mailboxes,
    reply_get,
    reply_label_get,
    reply_list,
)
from inbox.services.inbox import (
    reply_label_create,
    reply_label_delete,
    reply_label_list_of,
    reply_label_rename,
    reply_label_set,
    reply_labels_ensure,
    reply_mark_read,
    reply_mark_unread,
    reply_send,
)
from sending.models import Mailbox

PER_PAGE = 25
FILTER_KEYS = ("campaign", "mailbox", "label", "kind", "unread")


def _filter_query(request: WorkspaceRequest) -> str:
    """The list's filters (and page) as a query string, kept on links to a reply and back."""
    kept = {k: request.GET[k] for k in (*FILTER_KEYS, "page") if request.GET.get(k)}
    return urlencode(kept)


def _listing(request: WorkspaceRequest) -> dict[str, Any]:
    """The left pane: filters resolved against the workspace and one page of rows, without
    counting the whole list (one row more than a page says whether there is a next one)."""
    workspace = request.workspace
    form = InboxFilterForm(request.GET)
    errors: list[str] = []
    chosen: dict[str, Any] = {}
    if not form.is_valid():
        errors += [
            f"{name}: {' '.join(str(p) for p in problems)}"
            for name, problems in form.errors.items()
        ]
    data = form.cleaned_data if form.is_valid() else {}
    if data.get("campaign"):
        campaign = Campaign.objects.filter(workspace=workspace, public_id=data["campaign"]).first()
        if campaign is None:
            errors.append("No such campaign in this workspace.")
        chosen["campaign"] = campaign
    if data.get("mailbox"):
        mailbox = Mailbox.objects.filter(domain__workspace=workspace, pk=data["mailbox"]).first()
        if mailbox is None:
            errors.append("No such mailbox in this workspace.")
        chosen["mailbox"] = mailbox
    if data.get("label"):
        label = reply_label_get(workspace=workspace, pk=data["label"])
        if label is None:
            errors.append("No such label in this workspace.")
        chosen["label"] = label
    page_number = data.get("page") or 1
    rows: list[Reply] = []
    if not errors:
        replies = reply_list(
            workspace=workspace,
            campaign=chosen.get("campaign"),
            mailbox=chosen.get("mailbox"),
            label=chosen.get("label"),
            kind=data.get("kind") or "",
            unread_only=bool(data.get("unread")),
        )
        start = (page_number - 1) * PER_PAGE
        rows = list(replies[start : start + PER_PAGE + 1])
    query = _filter_query(request)
    base = {k: v for k, v in request.GET.items() if k in FILTER_KEYS and v}
    return {
        "filter_form": form,
        "filter_errors": errors,
        "filters": base,
        "filtered": bool(base),
        "rows": rows[:PER_PAGE],
        "page_number": page_number,
        "has_next": len(rows) > PER_PAGE,
        "previous_query": urlencode({**base, "page": page_number - 1}) if page_number > 1 else "",
        "next_query": urlencode({**base, "page": page_number + 1}),
        "query": query,
        "campaigns": reply_filter_campaigns(workspace=workspace),
        "mailboxes": reply_filter_mailboxes(workspace=workspace),
        "kinds": ReplyKind.choices,
    }


def _page(
    request: WorkspaceRequest,
    reply: Reply | None = None,
    *,
    send_form: ReplySendForm | None = None,
    status: int = 200,
) -> HttpResponse:
    labels = reply_labels_ensure(workspace=request.workspace)
    context = _listing(request)
    context["labels"] = labels
    if context["filter_errors"] and status == 200:
        status = 400
    if reply is not None:
        context.update(_thread(reply, labels, send_form))
    return render(request, "inbox/page.html", context, status=status)


def _thread(
    reply: Reply, labels: list[ReplyLabel], send_form: ReplySendForm | None
) -> dict[str, Any]:
    on = {lb.pk for lb in reply.labels.all()}
    return {
        "reply": reply,
        "label_toggles": [(lb, lb.pk in on) for lb in labels],
        "answers": reply_answers(reply=reply),
        "answerable": reply.kind in ANSWERABLE_KINDS,
        "send_form": send_form or ReplySendForm(),
    }


def _reply_or_404(request: WorkspaceRequest, reply_id: str) -> Reply:
    reply = reply_get(workspace=request.workspace, public_id=reply_id)
    if reply is None:
        raise Http404("No such reply.")
    return reply


def _reply_url(request: WorkspaceRequest, reply: Reply) -> str:
    url = reverse("inbox_reply", args=[request.workspace.public_id, reply.public_id])
    query = request.POST.get("next_query", "") or _filter_query(request)
    return f"{url}?{query}" if query else url


@workspace_view()
@require_GET
def inbox(request: WorkspaceRequest) -> HttpResponse:
    return _page(request)


@workspace_view()
@require_GET
def inbox_reply(request: WorkspaceRequest, reply_id: str) -> HttpResponse:
    """The thread; an unread reply is marked read by the page once shown (HTMX)."""
    return _page(request, _reply_or_404(request, reply_id))


@workspace_view()
@require_POST
def inbox_reply_read(request: WorkspaceRequest, reply_id: str) -> HttpResponse:
    """Mark read (`read=1`) or unread (`read=0`). HTMX gets the toggle, the list row and the
    navigation badge back; a plain form goes back to the thread (or the list, when unread)."""
    reply = _reply_or_404(request, reply_id)
    read = request.POST.get("read", "1") != "0"
    if read:
        reply_mark_read(reply=reply)
    else:
        reply_mark_unread(reply=reply)
    if request.htmx:
        context = {"reply": reply, "r": reply, "query": request.POST.get("next_query", "")}
        return render(request, "inbox/partials/read_response.html", context)
    if not read:
        messages.info(request, "Marked unread.")
        return redirect(reverse("inbox", args=[request.workspace.public_id]))
    return redirect(_reply_url(request, reply))


@workspace_view()
@require_POST
def inbox_reply_label(request: WorkspaceRequest, reply_id: str) -> HttpResponse:
    """Toggle one label on a reply: `label=<id>` and `on=1|0`."""
    reply = _reply_or_404(request, reply_id)
    label_id = request.POST.get("label", "")
    label = (
        reply_label_get(workspace=request.workspace, pk=int(label_id))
        if label_id.isdigit() and len(label_id) < 12
        else None
    )
    if label is None:
        raise Http404("No such label.")
    on = request.POST.get("on", "1") != "0"
    reply_label_set(
        reply=reply,
        actor=request.user,
        add=[label] if on else [],
        remove=[] if on else [label],
    )
    if request.htmx:
        labels = reply_labels_ensure(workspace=request.workspace)
        current = {lb.pk for lb in reply_label_list_of(reply=reply)}
        context = {
            "reply": reply,
            "label_toggles": [(lb, lb.pk in current) for lb in labels],
            "query": request.POST.get("next_query", ""),
        }
        return render(request, "inbox/partials/labels.html", context)
    return redirect(_reply_url(request, reply))


@workspace_view()
@require_POST
def inbox_reply_send(request: WorkspaceRequest, reply_id: str) -> HttpResponse:
    """Answer in the thread, from the mailbox the reply arrived in."""
    reply = _reply_or_404(request, reply_id)
    form = ReplySendForm(request.POST)
    if form.is_valid():
        try:
            message = reply_send(reply=reply, actor=request.user, body=form.cleaned_data["body"])
        except ApplicationError as error:
            form_add_refusal(form, error)
        else:
            messages.success(
                request, f"Your answer to {message.recipient} is on its way from {message.sender}."
            )
            return redirect(_reply_url(request, reply))
    return _page(request, reply, send_form=form, status=400)


@workspace_view()
def inbox_labels(request: WorkspaceRequest) -> HttpResponse:
    """The workspace's labels: the built-in ones, and its own to add, rename or delete."""
    form = LabelForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            label = reply_label_create(
                workspace=request.workspace, actor=request.user, name=form.cleaned_data["name"]
            )
        except ApplicationError as error:
            form_add_refusal(form, error)
        else:
            messages.success(request, f"The label “{label.name}” was added.")
            return redirect("inbox_labels", request.workspace.public_id)
    labels = reply_labels_ensure(workspace=request.workspace)
    status = 400 if form.errors else 200
    return render(request, "inbox/labels.html", {"labels": labels, "form": form}, status=status)


@workspace_view()
@require_POST
def inbox_label_change(request: WorkspaceRequest, pk: int) -> HttpResponse:
    """Rename (`name=`) or delete (`delete=1`) one of the workspace's own labels."""
    label = reply_label_get(workspace=request.workspace, pk=pk)
    if label is None:
        raise Http404("No such label.")
    try:
        if request.POST.get("delete"):
            reply_label_delete(label=label, actor=request.user)
            messages.success(request, f"The label “{label.name}” was deleted.")
        else:
            old = label.name
            reply_label_rename(label=label, actor=request.user, name=request.POST.get("name", ""))
            messages.success(request, f"“{old}” is now called “{label.name}”.")
    except ApplicationError as error:
        messages.error(request, error.html())
    return redirect("inbox_labels", request.workspace.public_id)


pages: list[URLPattern] = [
    path("inbox/", inbox, name="inbox"),
    path("inbox/labels/", inbox_labels, name="inbox_labels"),
    path("inbox/labels/<int:pk>/", inbox_label_change, name="inbox_label_change"),
    path("inbox/<str:reply_id>/", inbox_reply, name="inbox_reply"),
    path("inbox/<str:reply_id>/read/", inbox_reply_read, name="inbox_reply_read"),
    path("inbox/<str:reply_id>/labels/", inbox_reply_label, name="inbox_reply_label"),
    path("inbox/<str:reply_id>/send/", inbox_reply_send, name="inbox_reply_send"),
]
