"""The product's own error pages (404, 403, 500), and the API's JSON for the same errors.

Django calls these as handler404/403/500 (config.urls); config.middleware calls them too when
DEBUG is on, where Django would otherwise answer with its technical pages."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template import loader
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from accounts.api.errors import error_body

API_PREFIX = "/api/"


def is_api(request: HttpRequest) -> bool:
    """Everything under /api/ answers JSON, never HTML."""
    return request.path.startswith(API_PREFIX)


def safe_referer(request: HttpRequest) -> str | None:
    """The page the user came from, when it is on this site."""
    for header in ("HTTP_REFERER", "HTTP_HX_CURRENT_URL"):
        url = request.META.get(header, "")
        if url and url_has_allowed_host_and_scheme(
            url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return url
    return None


def _message(exception: Exception | None) -> str:
    """What the view said about the error, if it said it in words (not a resolver's dict)."""
    if exception is None:
        return ""
    text = getattr(exception, "message", None)
    if isinstance(text, str):
        return text
    return exception.args[0] if exception.args and isinstance(exception.args[0], str) else ""


def _page(
    request: HttpRequest, template: str, *, status: int, exception: Exception | None
) -> HttpResponse:
    signed_in = bool(getattr(request, "user", None) and request.user.is_authenticated)
    context = {
        "layout": "layouts/app.html" if signed_in else "layouts/public.html",
        "message": _message(exception),
        "back_url": safe_referer(request),
        "home_url": reverse("app_home") if signed_in else reverse("landing"),
        "home_label": "Go to your workspace" if signed_in else "Go to the home page",
    }
    return render(request, template, context, status=status)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api(request):
        message = "Not found. The API's endpoints are listed at /api/v1/."
        return JsonResponse(error_body("not_found", message), status=404)
    return _page(request, "404.html", status=404, exception=exception)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api(request):
        message = _message(exception) or "You do not have permission to do that."
        return JsonResponse(error_body("permission_denied", message), status=403)
    return _page(request, "403.html", status=403, exception=exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """Rendered without the request's context: whatever broke (the database, a context
    processor) must not break the error page too."""
    if is_api(request):
        message = "Something went wrong on our side; it has been logged. Try again later."
        return JsonResponse(error_body("server_error", message), status=500)
    html = loader.get_template("500.html").render(
        {"product_name": settings.PRODUCT_NAME, "home_url": reverse("app_home")}
    )
    return HttpResponse(html, status=500)
