"""The project's URLs plus the inbox's pages and API (until config.urls includes them)."""

from django.urls import include, path

import inbox.api.urls
from config.urls import handler403, handler404, handler500  # noqa: F401 - served as here
from config.urls import urlpatterns as project_urlpatterns
from inbox.urls import workspace_urlpatterns as inbox_pages

urlpatterns = [
    path("w/<str:public_id>/", include(inbox_pages)),
    path("api/v1/", include(inbox.api.urls)),
    *project_urlpatterns,
]
