"""Errors on pages: a refused action becomes a message on the page the user came from, and
unexpected errors get the product's own pages (JSON under /api/), also with DEBUG on."""

import inspect
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.core import signals
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.utils.log import log_response
from django_htmx.http import HttpResponseClientRedirect

from accounts.api.errors import error_body
from config.error_pages import (
    is_api,
    page_not_found,
    permission_denied,
    safe_referer,
    server_error,
)
from config.errors import ApplicationError

GetResponse = Callable[[HttpRequest], HttpResponse]


def _allowed_methods(view: Callable[..., object]) -> set[str] | None:
    """The methods a view accepts, when a `require_http_methods` decorator in its wrapper chain
    says (None: any method)."""
    func: object = view
    while callable(func):
        try:
            methods = inspect.getclosurevars(func).nonlocals.get("request_method_list")
        except TypeError:
            methods = None
        if methods is not None:
            return set(methods)
        func = getattr(func, "__wrapped__", None)
    return None


def _shows_a_page(path: str) -> bool:
    try:
        match = resolve(path)
    except Resolver404:
        return False
    methods = _allowed_methods(match.func)
    return methods is None or "GET" in methods


def nearest_page(path: str, *, include_self: bool = True) -> str:
    """`path` itself when it is a page, else the closest page above it (a POST-only action
    /w/x/domains/d/remove/ goes back to /w/x/domains/d/)."""
    parts = path.rstrip("/").split("/")
    last = len(parts) if include_self else len(parts) - 1
    for end in range(last, 1, -1):
        candidate = "/".join(parts[:end]) + "/"
        if _shows_a_page(candidate):
            return candidate
    return "/"


def back_url(request: HttpRequest) -> str:
    """Where a refused action returns to: the page the user came from (same site only), else
    the page itself; never the URL that was just refused on a GET (that would loop)."""
    here = request.build_absolute_uri()
    came_from = safe_referer(request)
    if came_from and not (request.method == "GET" and came_from == here):
        return came_from
    return nearest_page(request.path, include_self=request.method != "GET")


class ApplicationErrorMiddleware:
    """The one place a page turns a service's refusal (ApplicationError) into a message.

    Views keep only what is specific to them: a form puts a refusal that names its fields next
    to those fields. Any other refusal lands here: the message is flashed and the user goes back
    to the page they came from, with nothing changed (services write in one transaction).
    Not-found and permission refusals keep their status (the 404 and 403 pages); under /api/
    the answer is the API's JSON error shape."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, ApplicationError):
            return None
        if is_api(request):
            body = error_body(exception.code, exception.message, exception.fields, exception.link)
            return JsonResponse(body, status=exception.status)
        if exception.status == 404:
            return page_not_found(request, exception)
        if exception.status == 403:
            return permission_denied(request, exception)
        messages.error(request, exception.html())
        target = back_url(request)
        htmx = getattr(request, "htmx", None)
        if htmx and not htmx.boosted:
            # A fragment swap cannot show a page's message: reload the page the user is on.
            return HttpResponseClientRedirect(target)
        return HttpResponseRedirect(target)


class ErrorPagesMiddleware:
    """With DEBUG on (as in `make run`) Django answers errors with its technical pages; this
    answers with the product's pages instead (JSON under /api/), unless a developer asks for the
    technical ones with DJANGO_DEBUG_PAGES=true. With DEBUG off, Django's own error handling
    already uses the same pages (handler404/403/500 in config.urls), so this stays out of it.
    500s are logged with their traceback either way."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    @staticmethod
    def _takes_over(request: HttpRequest) -> bool:
        return settings.DEBUG and (is_api(request) or not settings.DEBUG_PAGES)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # No view matched the URL: Django's technical "page not found" (DEBUG) answered.
        unmatched = response.status_code == 404 and request.resolver_match is None
        return page_not_found(request) if unmatched and self._takes_over(request) else response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not self._takes_over(request):
            return None
        if isinstance(exception, Http404):
            response = page_not_found(request, exception)
            log_response("Not Found: %s", request.path, response=response, request=request)
            return response
        if isinstance(exception, PermissionDenied | BadRequest | SuspiciousOperation):
            return None  # Django's own handling (the 403 page; 400 with its security log)
        # As Django does for an uncaught exception: tell listeners, log it with the traceback.
        signals.got_request_exception.send(sender=None, request=request)
        response = server_error(request)
        log_response(
            "%s: %s",
            response.reason_phrase,
            request.path,
            response=response,
            request=request,
            exception=exception,
        )
        return response
