import re
from types import ModuleType

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

import accounts.api.urls
import billing.api.urls
import campaigns.api.urls
import inbox.api.urls
import leaderboard.api.urls
import reputation.api.urls
import sending.api.urls
import webhooks.api.urls
from accounts import views as account_views
from accounts.api.errors import error_body
from accounts.urls import workspace_urlpatterns as account_pages
from billing.urls import workspace_urlpatterns as billing_pages
from campaigns.urls import workspace_urlpatterns as campaign_pages
from config import error_pages
from inbox.urls import workspace_urlpatterns as inbox_pages
from leaderboard.urls import workspace_urlpatterns as leaderboard_pages
from sending.urls import workspace_urlpatterns as sending_pages
from tracking.urls import workspace_urlpatterns as tracking_pages
from warming.urls import workspace_urlpatterns as warming_pages
from webhooks.urls import workspace_urlpatterns as webhook_pages

workspace_pages = [
    *account_pages,
    *sending_pages,
    *warming_pages,
    *leaderboard_pages,
    *billing_pages,
    *campaign_pages,
    *inbox_pages,
    *tracking_pages,
    *webhook_pages,
]
API_V1: list[ModuleType] = [
    accounts.api.urls,
    sending.api.urls,
    reputation.api.urls,
    billing.api.urls,
    campaigns.api.urls,
    inbox.api.urls,
    webhooks.api.urls,
    leaderboard.api.urls,
]


def _route(pattern: URLPattern | URLResolver) -> str:
    """`^domains/(?P<id>[^/.]+)/$` or `me/` as `/api/v1/domains/{id}/`, `/api/v1/me/`."""
    text = str(pattern.pattern).lstrip("^").rstrip("$")
    text = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", text)
    text = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", text)
    return "/api/v1/" + text


def _methods(pattern: URLPattern) -> list[str]:
    view = pattern.callback
    actions = getattr(view, "actions", None)  # a DRF viewset route: {"get": "list", ...}
    cls = getattr(view, "cls", None) or getattr(view, "view_class", None)
    allowed = getattr(cls, "http_method_names", [])
    names = actions.keys() if actions else [m for m in allowed if cls and hasattr(cls, m)]
    return [m.upper() for m in names if m in allowed and m not in ("head", "options")]


def api_index(request: HttpRequest) -> HttpResponse:
    """GET /api/v1/: what the API offers, so the bare prefix answers something useful."""
    if request.method not in ("GET", "HEAD"):
        message = f"Method {request.method} is not allowed here; use GET."
        return JsonResponse(error_body("method_not_allowed", message), status=405)
    endpoints = [
        {"path": _route(pattern), "methods": _methods(pattern)}
        for module in API_V1
        for pattern in module.urlpatterns
        if isinstance(pattern, URLPattern)
    ]
    return JsonResponse(
        {
            "name": f"{settings.PRODUCT_NAME} API",
            "version": "v1",
            "authentication": "Authorization: Bearer <token> (a token is bound to one workspace)",
            "documentation": "/api/docs/",
            "schema": "/api/schema/",
            "endpoints": endpoints,
        }
    )


urlpatterns = [
    path("", account_views.landing, name="landing"),
    path("", include("accounts.urls")),
    path("w/<str:public_id>/", include(workspace_pages)),
    path("accounts/", include("allauth.urls")),
    path("", include("reputation.urls")),
    path("", include("sending.urls")),
    path("", include("billing.urls")),
    path("", include("campaigns.urls")),
    path("", include("tracking.urls")),
    path("", include("leaderboard.urls")),
    path("admin/", admin.site.urls),
    # Stripe's webhooks, verified by signature per endpoint (dj-stripe).
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    path("api/v1/", api_index, name="api-index"),
    *[path("api/v1/", include(module)) for module in API_V1],
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

handler404 = error_pages.page_not_found
handler403 = error_pages.permission_denied
handler500 = error_pages.server_error
