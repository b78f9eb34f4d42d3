from django.urls import path

from warming import views

workspace_urlpatterns = [
    path("warming/", views.warming, name="warming"),
    path("warming/<int:mailbox_id>/", views.warming_mailbox, name="warming_mailbox"),
]
