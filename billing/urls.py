from django.urls import path

from billing import views

workspace_urlpatterns = [
    path("billing/", views.billing, name="billing"),
]
