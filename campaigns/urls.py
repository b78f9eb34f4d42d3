from django.urls import URLPattern, path

from campaigns.views import campaigns, leads, suppressions, unsubscribe

urlpatterns = [path("u/<str:token>/", unsubscribe.unsubscribe, name="unsubscribe")]

# Under /w/<workspace>/ (config.urls).
workspace_urlpatterns: list[URLPattern] = [
    *campaigns.pages,
    *leads.pages,
    *suppressions.pages,
]
