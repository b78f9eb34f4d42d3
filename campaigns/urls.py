from django.urls import URLPattern, path

from campaigns.views import campaigns, leads, public

# Filled in by each page module (leads, campaigns); the public unsubscribe route is not under /w/.
workspace_urlpatterns: list[URLPattern] = [
    *getattr(leads, "urlpatterns", []),
    *getattr(campaigns, "urlpatterns", []),
]
urlpatterns: list[URLPattern] = [*getattr(public, "urlpatterns", [])]
