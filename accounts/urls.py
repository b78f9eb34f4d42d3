from django.urls import path

from accounts import views

urlpatterns = [
    path("app/", views.app_home, name="app_home"),
    path("workspaces/new/", views.workspace_new, name="workspace_new"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path(
        "invitations/accept/<int:invitation_id>/",
        views.invitation_accept_listed,
        name="invitation_accept_listed",
    ),
]

workspace_urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("scores/", views.dashboard_domains, name="dashboard_domains"),
    path("settings/", views.workspace_settings, name="workspace_settings"),
    path("settings/rename/", views.workspace_rename, name="workspace_rename"),
    path("settings/invitations/", views.invitation_create, name="invitation_create"),
    path(
        "settings/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path(
        "settings/members/<int:membership_id>/role/", views.membership_role, name="membership_role"
    ),
    path(
        "settings/members/<int:membership_id>/remove/",
        views.membership_remove,
        name="membership_remove",
    ),
    path("settings/tokens/", views.api_token_create, name="api_token_create"),
    path("settings/tokens/<int:token_id>/revoke/", views.api_token_revoke, name="api_token_revoke"),
]
