from django.urls import path

from reputation import views
from reputation.api.events_hook import EventsHookView

urlpatterns = [
    path("hooks/kumomta/", views.kumomta_hook, name="kumomta_hook"),
    path("hooks/events/", EventsHookView.as_view(), name="events_hook"),
]
