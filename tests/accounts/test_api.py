import pytest
from django.core.management import call_command
from openapi_spec_validator import validate
from rest_framework.test import APIClient

from accounts.crypto import secret_hash
from accounts.models import ApiToken, AuditLog, Membership, Role
from accounts.services import api_token_revoke
from tests.conftest import token_client
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_a_valid_token_authenticates_and_is_bound_to_its_workspace(owner):
    second = MembershipFactory(user=owner.user, role=Role.OWNER)
    client = token_client(owner)
    me = client.get("/api/v1/me/").json()
    assert me["email"] == owner.user.email
    assert me["token"]["workspace"] == owner.workspace.public_id
    listed = client.get("/api/v1/workspaces/").json()
    assert listed["count"] == 1
    assert listed["results"][0] == {
        "public_id": owner.workspace.public_id,
        "name": owner.workspace.name,
        "leaderboard_handle": owner.workspace.leaderboard_handle,
        "role": "owner",
        "created_at": listed["results"][0]["created_at"],
    }
    # The user belongs to the second workspace too, but this token is not bound to it.
    assert client.get(f"/api/v1/workspaces/{second.workspace.public_id}/").status_code == 404


def test_the_browser_session_sees_all_my_workspaces_with_roles(owner):
    MembershipFactory(user=owner.user, role=Role.MEMBER)
    client = APIClient()
    client.force_login(owner.user)
    results = client.get("/api/v1/workspaces/").json()["results"]
    assert sorted(r["role"] for r in results) == ["member", "owner"]


@pytest.mark.parametrize(
    "header",
    ["Bearer tg_wrong", "Bearer", "Bearer a b", "Bearer not-even-our-format"],
)
def test_a_wrong_token_gets_401_with_the_error_shape(owner, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == "authentication_failed"


def test_no_credentials_gets_401(db):
    response = APIClient().get("/api/v1/workspaces/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_revoked_token_stops_working(owner):
    client = token_client(owner)
    assert client.get("/api/v1/me/").status_code == 200
    api_token_revoke(token=client.token.obj, actor=owner.user)
    assert client.get("/api/v1/me/").status_code == 401


def test_a_token_dies_with_its_membership(owner, teammate):
    client = token_client(teammate)
    from accounts.services import membership_remove

    membership_remove(membership=teammate, actor=owner.user)
    assert client.get("/api/v1/me/").status_code == 401


def test_tokens_are_stored_hashed_and_shown_once(owner, owner_client):
    response = owner_client.post(
        f"/w/{owner.workspace.public_id}/settings/tokens/", {"name": "CRM sync"}
    )
    secret = response.context["issued_token"].secret
    assert secret in response.content.decode()
    token = ApiToken.objects.get(name="CRM sync")
    assert token.token_hash == secret_hash(secret)
    assert secret not in {token.token_hash, token.prefix}
    page = owner_client.get(f"/w/{owner.workspace.public_id}/settings/").content.decode()
    assert "CRM sync" in page
    assert secret not in page
    assert AuditLog.objects.filter(action="api_token.create", object_id=str(token.pk)).exists()


def test_a_token_needs_a_sensible_name(owner, owner_client):
    owner_client.post(f"/w/{owner.workspace.public_id}/settings/tokens/", {"name": "x" * 81})
    owner_client.post(f"/w/{owner.workspace.public_id}/settings/tokens/", {"name": "   "})
    assert not ApiToken.objects.exists()


def test_create_api_token_command_prints_a_working_token(owner, capsys):
    call_command("create_api_token", owner.user.email, "--workspace", owner.workspace.public_id)
    secret = capsys.readouterr().out.strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/me/").json()["token"]["workspace"] == owner.workspace.public_id


def test_create_api_token_command_refuses_a_workspace_the_user_is_not_in(owner, stranger):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not a member"):
        call_command(
            "create_api_token", owner.user.email, "--workspace", stranger.workspace.public_id
        )
    assert not ApiToken.objects.exists()


def test_validation_errors_use_the_error_shape_and_change_nothing(owner):
    client = token_client(owner)
    response = client.patch(
        f"/api/v1/workspaces/{owner.workspace.public_id}/", {"name": "x" * 500}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == ["name"]
    owner.workspace.refresh_from_db()
    assert owner.workspace.name != "x" * 500


def test_members_are_paginated(owner, user_factory):
    for _ in range(4):
        Membership.objects.create(workspace=owner.workspace, user=user_factory())
    client = token_client(owner)
    page = client.get(f"/api/v1/workspaces/{owner.workspace.public_id}/members/?page_size=2").json()
    assert page["count"] == 5
    assert len(page["results"]) == 2
    assert page["next"].endswith("page=2&page_size=2")


def test_requests_are_throttled_per_user(owner, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "3/min", "user": "3/min"})
    client = token_client(owner)
    codes = [client.get("/api/v1/me/").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    response = client.get("/api/v1/me/")
    assert response.json()["error"]["code"] == "throttled"
    assert int(response["Retry-After"]) > 0
    # Another user is not affected.
    assert token_client(MembershipFactory()).get("/api/v1/me/").status_code == 200


def test_schema_is_valid_openapi_3_and_documents_the_endpoints(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    validate(schema)
    assert schema["openapi"].startswith("3.")
    assert {
        "/api/v1/me/",
        "/api/v1/workspaces/",
        "/api/v1/workspaces/{public_id}/",
        "/api/v1/domains/",
        "/api/v1/domains/{id}/",
        "/api/v1/domains/{id}/dns-records/",
        "/api/v1/domains/{id}/verify/",
        "/api/v1/mailboxes/",
        "/api/v1/mailboxes/{id}/",
        "/api/v1/mailboxes/{id}/test-connection/",
    } <= set(schema["paths"])
    write = schema["components"]["schemas"]["MailboxWriteRequest"]["properties"]
    assert write["smtp_password"]["writeOnly"] is True
    assert "smtp_password" not in schema["components"]["schemas"]["Mailbox"]["properties"]
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_interactive_docs_are_served_without_a_cdn(client):
    body = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in body
    assert "cdn" not in body.lower()
