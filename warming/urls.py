from django.urls import path

from warming import views

workspace_urlpatterns = [
    path("warming/", views.warming, name="warming"),
    path("warming/<int:mailbox_id>/", views.warming_mailbox, name="warming_mailbox"),
    path("warming/tasks/", views.warming_tasks, name="warming_tasks"),
    path("warming/tasks/<int:send_id>/", views.warming_task, name="warming_task"),
]
