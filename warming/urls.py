from django.urls import path

from warming import views

workspace_urlpatterns = [
    path("warming/", views.warming, name="warming"),
]
