from django.urls import URLPattern, path

from tracking import views

# Public, at the site's root (config.urls): the open pixel and the click redirect.
urlpatterns = [
    path("t/o/<str:token>.gif", views.open_pixel, name="tracking_open"),
    path("t/c/<str:token>/", views.click_redirect, name="tracking_click"),
    path("t/tls-ask/", views.tls_ask, name="tracking_tls_ask"),
]

# Under /w/<workspace>/ (config.urls).
workspace_urlpatterns: list[URLPattern] = [*views.pages]
