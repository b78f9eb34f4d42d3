from django.urls import URLPattern

from webhooks.views import pages

# Under /w/<workspace>/ (config.urls).
workspace_urlpatterns: list[URLPattern] = [*pages]
