"""Personas owner / teammate / stranger: pages and API objects stay inside their workspace."""

import pytest

from accounts.models import ApiToken, AuditLog, Invitation, Membership, Role
from accounts.services import api_token_create, invitation_create
from tests.conftest import token_client

pytestmark = pytest.mark.django_db

PAGES = [
    "",
    "domains/",
    "mailboxes/",
    "warming/",
    "campaigns/",
    "leaderboard/",
    "billing/",
    "settings/",
]


@pytest.mark.parametrize("page", PAGES)
def test_members_see_their_workspace_pages(owner, teammate_client, page):
    response = teammate_client.get(f"/w/{owner.workspace.public_id}/{page}")
    assert response.status_code == 200
    assert owner.workspace.name in response.content.decode()


@pytest.mark.parametrize("page", [*PAGES, "scores/"])
def test_a_stranger_gets_404_on_another_workspaces_pages(owner, stranger_client, page):
    response = stranger_client.get(f"/w/{owner.workspace.public_id}/{page}")
    assert response.status_code == 404
    assert owner.workspace.name not in response.content.decode()


def test_anonymous_visitors_are_sent_to_login(owner, client):
    response = client.get(f"/w/{owner.workspace.public_id}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_switcher_lists_only_my_workspaces(owner, stranger, teammate_client):
    body = teammate_client.get(f"/w/{owner.workspace.public_id}/").content.decode()
    assert owner.workspace.name in body
    assert stranger.workspace.name not in body


def test_switching_workspace_changes_where_app_home_goes(owner, teammate, teammate_client):
    second = Membership.objects.create(
        workspace=type(owner.workspace).objects.create(
            name="Second", leaderboard_handle="Sender_1"
        ),
        user=teammate.user,
        role=Role.MEMBER,
    )
    teammate_client.get(f"/w/{second.workspace.public_id}/")
    assert teammate_client.get("/app/")["Location"] == f"/w/{second.workspace.public_id}/"
    teammate_client.get(f"/w/{owner.workspace.public_id}/")
    assert teammate_client.get("/app/")["Location"] == f"/w/{owner.workspace.public_id}/"


def test_a_member_cannot_do_owner_or_admin_actions(owner, teammate, teammate_client):
    ws = owner.workspace.public_id
    assert (
        teammate_client.post(f"/w/{ws}/settings/rename/", {"name": "Hijacked"}).status_code == 403
    )
    response = teammate_client.post(
        f"/w/{ws}/settings/invitations/", {"email": "friend@x.test", "role": "owner"}
    )
    assert response.status_code == 403
    response = teammate_client.post(
        f"/w/{ws}/settings/members/{owner.pk}/role/", {"role": "member"}
    )
    assert response.status_code == 403
    owner.refresh_from_db()
    owner.workspace.refresh_from_db()
    assert owner.role == Role.OWNER
    assert owner.workspace.name != "Hijacked"
    assert not Invitation.objects.exists()


def test_a_member_cannot_remove_the_owner_or_revoke_their_token(owner, teammate, teammate_client):
    token = api_token_create(user=owner.user, workspace=owner.workspace, name="owner's").obj
    ws = owner.workspace.public_id
    teammate_client.post(f"/w/{ws}/settings/members/{owner.pk}/remove/")
    teammate_client.post(f"/w/{ws}/settings/tokens/{token.pk}/revoke/")
    assert Membership.objects.filter(pk=owner.pk).exists()
    token.refresh_from_db()
    assert token.revoked_at is None


def test_an_admin_cannot_grant_ownership(owner, teammate, client):
    teammate.role = Role.ADMIN
    teammate.save()
    client.force_login(teammate.user)
    client.post(
        f"/w/{owner.workspace.public_id}/settings/members/{teammate.pk}/role/", {"role": "owner"}
    )
    teammate.refresh_from_db()
    assert teammate.role == Role.ADMIN


def test_the_owner_changes_roles_and_it_is_audit_logged(owner, teammate, owner_client):
    owner_client.post(
        f"/w/{owner.workspace.public_id}/settings/members/{teammate.pk}/role/", {"role": "admin"}
    )
    teammate.refresh_from_db()
    assert teammate.role == Role.ADMIN
    log = AuditLog.objects.get(action="membership.role_change")
    assert (log.actor, log.before, log.after) == (owner.user, {"role": "member"}, {"role": "admin"})


def test_the_last_owner_cannot_leave_or_be_demoted(owner, owner_client):
    ws = owner.workspace.public_id
    owner_client.post(f"/w/{ws}/settings/members/{owner.pk}/remove/")
    owner_client.post(f"/w/{ws}/settings/members/{owner.pk}/role/", {"role": "member"})
    owner.refresh_from_db()
    assert owner.role == Role.OWNER


def test_a_stranger_cannot_touch_objects_of_another_workspace(owner, teammate, stranger_client):
    token = api_token_create(user=owner.user, workspace=owner.workspace, name="x").obj
    stranger_ws = stranger_client.get("/app/")["Location"]
    assert (
        stranger_client.post(f"{stranger_ws}settings/tokens/{token.pk}/revoke/").status_code == 404
    )
    response = stranger_client.post(f"{stranger_ws}settings/members/{teammate.pk}/remove/")
    assert response.status_code == 404
    assert Membership.objects.filter(pk=teammate.pk).exists()
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None


def test_api_stranger_gets_404_on_another_workspace(owner, stranger):
    client = token_client(stranger)
    ws = owner.workspace.public_id
    assert client.get(f"/api/v1/workspaces/{ws}/").status_code == 404
    assert client.get(f"/api/v1/workspaces/{ws}/members/").status_code == 404
    assert client.patch(f"/api/v1/workspaces/{ws}/", {"name": "x"}).status_code == 404
    listed = client.get("/api/v1/workspaces/").json()["results"]
    assert [w["public_id"] for w in listed] == [stranger.workspace.public_id]


def test_api_member_cannot_rename_but_owner_can(owner, teammate):
    ws = owner.workspace.public_id
    response = token_client(teammate).patch(f"/api/v1/workspaces/{ws}/", {"name": "Nope"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    response = token_client(owner).patch(f"/api/v1/workspaces/{ws}/", {"name": "Renamed"})
    assert response.status_code == 200
    assert response.json()["name"] == "Renamed"


def test_invitation_flow_adds_a_member_with_the_invited_role(
    smtp_mail, owner, user_factory, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invitation_create(
            workspace=owner.workspace, inviter=owner.user, email="Joiner@Acme.test", role=Role.ADMIN
        )
    body = smtp_mail.body(smtp_mail.wait_for("joiner@acme.test"))
    path = body.split("http://127.0.0.1:8000")[1].split()[0]
    joiner = user_factory(email="joiner@acme.test")
    wrong = user_factory(email="someone-else@acme.test")

    from django.test import Client

    other = Client()
    other.force_login(wrong)
    other.post(path)
    assert not Membership.objects.filter(user=wrong).exists()

    client = Client()
    client.force_login(joiner)
    response = client.post(path)
    assert response["Location"] == f"/w/{owner.workspace.public_id}/"
    assert Membership.objects.get(user=joiner).role == Role.ADMIN
    again = client.post(path, follow=True)  # used: refused, back to the page with the reason
    assert again.redirect_chain == [(path, 302)]
    assert "no longer valid" in again.content.decode()
    assert Membership.objects.filter(user=joiner).count() == 1


def test_settings_page_queries_do_not_grow_with_members(
    owner, owner_client, user_factory, django_assert_max_num_queries
):
    for n in range(3):
        Membership.objects.create(workspace=owner.workspace, user=user_factory())
    url = f"/w/{owner.workspace.public_id}/settings/"
    owner_client.get(url)
    with django_assert_max_num_queries(14) as few:
        owner_client.get(url)
    for n in range(20):
        Membership.objects.create(workspace=owner.workspace, user=user_factory())
        api_token_create(user=owner.user, workspace=owner.workspace, name=f"t{n}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        owner_client.get(url)


@pytest.mark.parametrize(
    "path", ["/accounts/email/", "/accounts/2fa/", "/accounts/password/change/"]
)
def test_account_pages_render_inside_the_app_layout(owner, owner_client, path):
    body = owner_client.get(path).content.decode()
    assert 'class="sidenav"' in body
    assert owner.workspace.name in body


def test_a_user_without_a_workspace_is_offered_their_invitations(owner, user_factory, client):
    invitation_create(workspace=owner.workspace, inviter=owner.user, email="solo@acme.test")
    solo = user_factory(email="solo@acme.test")
    client.force_login(solo)
    response = client.get("/app/")
    assert response.status_code == 200
    invitation = response.context["invitations"].get()
    assert invitation.workspace == owner.workspace
    response = client.post(f"/invitations/accept/{invitation.pk}/")
    assert response["Location"] == f"/w/{owner.workspace.public_id}/"
    assert client.get("/app/")["Location"] == f"/w/{owner.workspace.public_id}/"


def test_nobody_else_can_accept_an_invitation_from_the_list(owner, stranger, stranger_client):
    invitation = invitation_create(
        workspace=owner.workspace, inviter=owner.user, email="solo@acme.test"
    ).obj
    assert stranger_client.post(f"/invitations/accept/{invitation.pk}/").status_code == 404
    assert not Membership.objects.filter(workspace=owner.workspace, user=stranger.user).exists()
