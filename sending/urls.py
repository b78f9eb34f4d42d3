from django.urls import path

from sending import views

workspace_urlpatterns = [
    path("domains/", views.domains, name="domains"),
    path("mailboxes/", views.mailboxes, name="mailboxes"),
    path("campaigns/", views.campaigns, name="campaigns"),
]
