from django.urls import URLPattern

from inbox.views import pages

# Under /w/<workspace>/ (config.urls).
workspace_urlpatterns: list[URLPattern] = [*pages]
