from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts import views as account_views
from accounts.api.errors import error_body
from accounts.urls import workspace_urlpatterns as account_pages
from billing.urls import workspace_urlpatterns as billing_pages
from leaderboard.urls import workspace_urlpatterns as leaderboard_pages
from sending.urls import workspace_urlpatterns as sending_pages
from warming.urls import workspace_urlpatterns as warming_pages

workspace_pages = [
    *account_pages,
    *sending_pages,
    *warming_pages,
    *leaderboard_pages,
    *billing_pages,
]

urlpatterns = [
    path("", account_views.landing, name="landing"),
    path("", include("accounts.urls")),
    path("w/<str:public_id>/", include(workspace_pages)),
    path("accounts/", include("allauth.urls")),
    path("", include("reputation.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("accounts.api.urls")),
    path("api/v1/", include("sending.api.urls")),
    path("api/v1/", include("reputation.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return defaults.page_not_found(request, exception)


handler404 = page_not_found
