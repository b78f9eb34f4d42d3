"""Pages: the workspace's webhook endpoints, one endpoint's settings, secret and delivery log.

Any member can look; owners and admins change things (the services check it too). A refusal
is shown beside the field it concerns."""

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import workspace_view
from accounts.http import WorkspaceRequest
from accounts.models import Role
from config.errors import ApplicationError
from config.forms import form_add_refusal
from webhooks import selectors
from webhooks.forms import EndpointForm
from webhooks.models import DeliveryState, WebhookEndpoint
from webhooks.services.deliveries import webhook_test_send
from webhooks.services.endpoints import (
    endpoint_create,
    endpoint_delete,
    endpoint_disable,
    endpoint_enable,
    endpoint_secret,
    endpoint_secret_rotate,
    endpoint_update,
)

PER_PAGE = 25


def _can_manage(request: WorkspaceRequest) -> bool:
    return request.membership.has_role(Role.ADMIN)


def _endpoint(request: WorkspaceRequest, endpoint_id: str) -> WebhookEndpoint:
    endpoint = selectors.endpoint_get(workspace=request.workspace, public_id=endpoint_id)
    if endpoint is None:
        raise Http404("No such webhook endpoint.")
    return endpoint


def _detail_url(request: WorkspaceRequest, endpoint: WebhookEndpoint) -> str:
    return reverse("webhook", args=[request.workspace.public_id, endpoint.public_id])


def _list_page(request: WorkspaceRequest, form: EndpointForm, status: int = 200) -> HttpResponse:
    context = {
        "endpoints": selectors.endpoint_list(workspace_ids=[request.workspace.pk]),
        "form": form,
        "can_manage": _can_manage(request),
    }
    return render(request, "webhooks/list.html", context, status=status)


@workspace_view()
@require_GET
def webhooks(request: WorkspaceRequest) -> HttpResponse:
    return _list_page(request, EndpointForm())


@workspace_view(min_role=Role.ADMIN)
@require_POST
def webhook_create(request: WorkspaceRequest) -> HttpResponse:
    form = EndpointForm(request.POST)
    if form.is_valid():
        try:
            endpoint, _ = endpoint_create(
                workspace=request.workspace,
                actor=request.user,
                url=form.cleaned_data["url"],
                events=form.cleaned_data["events"],
                description=form.cleaned_data["description"],
            )
        except ApplicationError as error:
            form_add_refusal(form, error)
        else:
            messages.success(request, "Endpoint added. Copy its signing secret below.")
            return redirect(_detail_url(request, endpoint) + "?secret=show")
    return _list_page(request, form, status=400)


def _detail_page(
    request: WorkspaceRequest,
    endpoint: WebhookEndpoint,
    form: EndpointForm | None = None,
    status: int = 200,
) -> HttpResponse:
    state = request.GET.get("state", "")
    state = state if state in DeliveryState.values else ""
    rows = selectors.delivery_list(endpoint=endpoint, state=state)
    can_manage = _can_manage(request)
    context: dict[str, Any] = {
        "endpoint": endpoint,
        "can_manage": can_manage,
        "form": form
        or EndpointForm(
            initial={
                "url": endpoint.url,
                "description": endpoint.description,
                "events": endpoint.events,
            }
        ),
        "page": Paginator(rows, PER_PAGE).get_page(request.GET.get("page")),
        "state": state,
        "states": DeliveryState.choices,
        "secret": (
            endpoint_secret(endpoint=endpoint, actor=request.user)
            if can_manage and request.GET.get("secret") == "show"
            else ""
        ),
    }
    response = render(request, "webhooks/detail.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response


@workspace_view()
@require_GET
def webhook(request: WorkspaceRequest, endpoint_id: str) -> HttpResponse:
    return _detail_page(request, _endpoint(request, endpoint_id))


@workspace_view(min_role=Role.ADMIN)
@require_POST
def webhook_update(request: WorkspaceRequest, endpoint_id: str) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    form = EndpointForm(request.POST)
    if form.is_valid():
        try:
            endpoint_update(
                endpoint=endpoint,
                actor=request.user,
                url=form.cleaned_data["url"],
                events=form.cleaned_data["events"],
                description=form.cleaned_data["description"],
            )
        except ApplicationError as error:
            form_add_refusal(form, error)
            endpoint.refresh_from_db()
        else:
            messages.success(request, "Endpoint saved.")
            return redirect(_detail_url(request, endpoint))
    return _detail_page(request, endpoint, form=form, status=400)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def webhook_test(request: WorkspaceRequest, endpoint_id: str) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    try:
        webhook_test_send(endpoint=endpoint, actor=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Test event sent: its result is at the top of the log.")
    return redirect(_detail_url(request, endpoint))


@workspace_view(min_role=Role.ADMIN)
@require_POST
def webhook_enable(request: WorkspaceRequest, endpoint_id: str) -> HttpResponse:
    endpoint = endpoint_enable(endpoint=_endpoint(request, endpoint_id), actor=request.user)
    messages.success(request, "Endpoint turned back on: new events are sent to it.")
    return redirect(_detail_url(request, endpoint))


@workspace_view(min_role=Role.ADMIN)
@require_POST
def webhook_disable(request: WorkspaceRequest, endpoint_id: str) -> HttpResponse:
    endpoint = endpoint_disable(
        endpoint=_endpoint(request, endpoint_id),
        actor=request.user,
        reason=f"Turned off by {request.user.email}.",
    )
    messages.success(request, "Endpoint turned off: nothing is sent to it.")
    return redirect(_detail_url(request, endpoint))


@workspace_view(min_role=Role.ADMIN)
@require_POST
def webhook_secret_rotate(request: WorkspaceRequest, endpoint_id: str) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    endpoint_secret_rotate(endpoint=endpoint, actor=request.user)
    messages.success(request, "New signing secret: update your receiver with it.")
    return redirect(_detail_url(request, endpoint) + "?secret=show")


@workspace_view(min_role=Role.ADMIN)
@require_POST
def webhook_delete(request: WorkspaceRequest, endpoint_id: str) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    endpoint_delete(endpoint=endpoint, actor=request.user)
    messages.success(request, f"Endpoint {endpoint.url} deleted.")
    return redirect("webhooks", request.workspace.public_id)


pages: list[URLPattern] = [
    path("webhooks/", webhooks, name="webhooks"),
    path("webhooks/new/", webhook_create, name="webhook_create"),
    path("webhooks/<str:endpoint_id>/", webhook, name="webhook"),
    path("webhooks/<str:endpoint_id>/edit/", webhook_update, name="webhook_update"),
    path("webhooks/<str:endpoint_id>/test/", webhook_test, name="webhook_test"),
    path("webhooks/<str:endpoint_id>/enable/", webhook_enable, name="webhook_enable"),
    path("webhooks/<str:endpoint_id>/disable/", webhook_disable, name="webhook_disable"),
    path("webhooks/<str:endpoint_id>/secret/", webhook_secret_rotate, name="webhook_secret"),
    path("webhooks/<str:endpoint_id>/delete/", webhook_delete, name="webhook_delete"),
]
