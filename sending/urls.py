from django.urls import path

from sending import views
from sending.views import imports, oauth

workspace_urlpatterns = [
    path("domains/", views.domains, name="domains"),
    path("domains/<str:domain_id>/", views.domain_detail, name="domain_detail"),
    path("domains/<str:domain_id>/check/", views.domain_check, name="domain_check"),
    path("domains/<str:domain_id>/reputation/", views.domain_reputation, name="domain_reputation"),
    path(
        "domains/<str:domain_id>/rotate-dkim/", views.domain_rotate_dkim, name="domain_rotate_dkim"
    ),
    path("domains/<str:domain_id>/remove/", views.domain_remove, name="domain_remove"),
    path("mailboxes/", views.mailboxes, name="mailboxes"),
    path("mailboxes/<int:mailbox_id>/", views.mailbox_detail, name="mailbox_detail"),
    path("mailboxes/<int:mailbox_id>/test/", views.mailbox_test, name="mailbox_test"),
    path("mailboxes/<int:mailbox_id>/status/", views.mailbox_status, name="mailbox_status"),
    path("mailboxes/connect/<str:provider>/", oauth.mailbox_connect, name="mailbox_connect"),
]

urlpatterns = [
    path(
        "oauth/mailbox/callback/",
        oauth.mailbox_oauth_callback,
        name="mailbox_oauth_callback",
    ),
]

workspace_urlpatterns += [
    path("mailboxes/import/", imports.mailbox_import_new, name="mailbox_import"),
    path(
        "mailboxes/import/example.csv",
        imports.mailbox_import_example_csv,
        name="mailbox_import_example",
    ),
    path(
        "mailboxes/import/<int:import_id>/",
        imports.mailbox_import_detail,
        name="mailbox_import_detail",
    ),
]
