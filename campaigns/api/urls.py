from django.urls import URLPattern

from campaigns.api import campaigns, leads

urlpatterns: list[URLPattern] = [
    *getattr(leads, "urlpatterns", []),
    *getattr(campaigns, "urlpatterns", []),
]
