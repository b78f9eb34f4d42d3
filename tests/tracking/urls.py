"""The project's URLs plus tracking's, until config.urls includes them."""

from django.urls import include, path

from config.urls import urlpatterns as project
from tracking.urls import workspace_urlpatterns

urlpatterns = [
    path("", include("tracking.urls")),
    path("w/<str:public_id>/", include(workspace_urlpatterns)),
    *project,
]

handler404 = "config.error_pages.page_not_found"
handler403 = "config.error_pages.permission_denied"
handler500 = "config.error_pages.server_error"
