from django.urls import path

from reputation import views

urlpatterns = [path("hooks/kumomta/", views.kumomta_hook, name="kumomta_hook")]
