"""The operations console: staff only, searchable, and its actions are audit-logged."""

import pytest
from django.test import Client

from accounts.models import ApiToken, AuditLog, User
from accounts.services import api_token_create, audit_log_record

pytestmark = pytest.mark.django_db

CHANGELISTS = [
    "accounts/user",
    "accounts/workspace",
    "accounts/membership",
    "accounts/invitation",
    "accounts/apitoken",
    "accounts/auditlog",
    "django_celery_beat/periodictask",
]


@pytest.fixture
def staff_client(db) -> Client:
    staff = User.objects.create_user(email="support@ops.test", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    client.staff = staff
    return client


@pytest.mark.parametrize("changelist", CHANGELISTS)
def test_staff_open_every_console_list_with_search(staff_client, owner, teammate, changelist):
    response = staff_client.get(f"/admin/{changelist}/", {"q": "acme"})
    assert response.status_code == 200


def test_the_console_is_branded_and_shows_the_heartbeat(staff_client):
    body = staff_client.get("/admin/").content.decode()
    assert "TrustGate operations" in body
    assert "Periodic schedule" in body


def test_customers_are_kept_out_of_the_console(owner_client):
    assert owner_client.get("/admin/").status_code == 302
    response = owner_client.get("/admin/login/")
    assert response.status_code == 403
    assert "Staff only" in response.content.decode()
    assert owner_client.get("/admin/accounts/user/").status_code == 302


def test_anonymous_visitors_get_the_allauth_login_form(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert 'action="/accounts/login/"' in response.content.decode()


def test_workspace_search_finds_by_member_email(staff_client, owner, stranger):
    body = staff_client.get("/admin/accounts/workspace/", {"q": "owner@acme"}).content.decode()
    assert owner.workspace.public_id in body
    assert stranger.workspace.public_id not in body


def test_deactivating_users_from_the_console_is_audit_logged(staff_client, teammate):
    response = staff_client.post(
        "/admin/accounts/user/",
        {
            "action": "deactivate",
            "_selected_action": [teammate.user.pk],
            "apply": "1",
            "reason": "Left the company (ticket 7)",
        },
    )
    assert response.status_code == 302
    teammate.user.refresh_from_db()
    assert not teammate.user.is_active
    log = AuditLog.objects.get(action="user.deactivate")
    assert (log.actor, log.reason) == (staff_client.staff, "Left the company (ticket 7)")


def test_revoking_tokens_from_the_console_is_audit_logged(staff_client, owner):
    token = api_token_create(user=owner.user, workspace=owner.workspace, name="leaked").obj
    staff_client.post(
        "/admin/accounts/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk], "apply": "1", "reason": "Leaked"},
    )
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
    log = AuditLog.objects.get(action="api_token.revoke")
    assert (log.actor, log.reason) == (staff_client.staff, "Leaked")


def test_the_audit_log_is_read_only_in_the_console(staff_client, owner):
    log = audit_log_record(action="workspace.rename", actor=owner.user, workspace=owner.workspace)
    assert staff_client.get(f"/admin/accounts/auditlog/{log.pk}/delete/").status_code == 403
    response = staff_client.post(f"/admin/accounts/auditlog/{log.pk}/change/", {"action": "x"})
    assert response.status_code == 403
    assert AuditLog.objects.get(pk=log.pk).action != "x"


def test_staff_without_two_factor_are_sent_to_enrol_when_it_is_required(settings, password):
    from tests.accounts.test_signup import totp_activation_page, totp_now

    settings.STAFF_MFA_REQUIRED = True
    staff = User.objects.create_user(email="new-support@ops.test", is_staff=True)
    staff.set_password(password)
    staff.save()
    from allauth.account.models import EmailAddress

    EmailAddress.objects.create(user=staff, email=staff.email, verified=True, primary=True)
    client = Client()
    client.post("/accounts/login/", {"login": staff.email, "password": password})
    assert client.get("/admin/").status_code == 302
    response = client.get("/admin/login/")
    assert response.status_code == 403
    assert "Two-factor required" in response.content.decode()

    secret = totp_activation_page(client, password).context["form"].secret
    client.post("/accounts/2fa/totp/activate/", {"code": totp_now(secret)})
    assert client.get("/admin/").status_code == 200


def test_deactivation_is_an_action_not_a_checkbox_on_the_user_form(staff_client, teammate):
    user = teammate.user
    membership = teammate
    response = staff_client.post(
        f"/admin/accounts/user/{user.pk}/change/",
        {
            "email": user.email,
            "full_name": user.full_name,
            # is_active left out: an unticked checkbox
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "1",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
            "memberships-0-id": str(membership.pk),
            "memberships-0-user": str(user.pk),
            "memberships-0-workspace": str(membership.workspace_id),
            "memberships-0-role": "owner",
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    user.refresh_from_db()
    membership.refresh_from_db()
    assert user.is_active
    assert membership.role == "member"
    assert not AuditLog.objects.filter(actor=staff_client.staff).exists()


def test_roles_change_through_the_workspace_not_the_console(staff_client, owner):
    response = staff_client.post(
        f"/admin/accounts/membership/{owner.pk}/change/",
        {
            "user": owner.user.pk,
            "workspace": owner.workspace_id,
            "role": "member",
            "created_at_0": "2026-01-01",
            "created_at_1": "00:00:00",
            "_save": "Save",
        },
    )
    assert response.status_code == 403
    owner.refresh_from_db()
    assert owner.role == "owner"  # the workspace's only owner stays one


def test_reactivating_needs_a_reason_too(staff_client, teammate):
    teammate.user.is_active = False
    teammate.user.save()
    page = staff_client.post(
        "/admin/accounts/user/",
        {"action": "reactivate", "_selected_action": [teammate.user.pk]},
    )
    assert page.status_code == 200
    assert teammate.user.email in page.content.decode()
    empty = staff_client.post(
        "/admin/accounts/user/",
        {"action": "reactivate", "_selected_action": [teammate.user.pk], "apply": "1"},
    )
    assert "Give a reason" in empty.content.decode()
    teammate.user.refresh_from_db()
    assert not teammate.user.is_active

    staff_client.post(
        "/admin/accounts/user/",
        {
            "action": "reactivate",
            "_selected_action": [teammate.user.pk],
            "apply": "1",
            "reason": "Back from leave",
        },
    )
    teammate.user.refresh_from_db()
    assert teammate.user.is_active
    log = AuditLog.objects.get(action="user.activate")
    assert (log.actor, log.reason) == (staff_client.staff, "Back from leave")
