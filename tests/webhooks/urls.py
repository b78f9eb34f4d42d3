"""The project's URLs plus the webhooks page and API, as config.urls will include them."""

from django.urls import include, path

import webhooks.api.urls
from config import urls as project
from webhooks.urls import workspace_urlpatterns

urlpatterns = [
    path("w/<str:public_id>/", include(workspace_urlpatterns)),
    path("api/v1/", include(webhooks.api.urls)),
    *project.urlpatterns,
]

handler404 = project.handler404
handler403 = project.handler403
handler500 = project.handler500
