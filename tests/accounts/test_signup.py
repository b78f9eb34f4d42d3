import re
import time

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.test import Client

from accounts.models import AuditLog, Membership, Role, User

pytestmark = pytest.mark.django_db

CONFIRM_LINK = re.compile(r"https?://[^/\s]+(/accounts/confirm-email/[^\s]+/)")


def totp_now(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def totp_activation_page(client: Client, password: str):
    """MFA changes need a fresh password re-entry, even right after login."""
    response = client.get("/accounts/2fa/totp/activate/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/reauthenticate/")
    response = client.post(response["Location"], {"password": password})
    assert response.status_code == 302
    response = client.get("/accounts/2fa/totp/activate/")
    assert response.status_code == 200
    return response


def signup(client: Client, email: str, password: str, **extra) -> None:
    response = client.post(
        "/accounts/signup/",
        {"email": email, "password1": password, "password2": password, **extra},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == "/accounts/confirm-email/"


def test_it_signs_up_verifies_by_email_and_reaches_the_dashboard(smtp_mail, password):
    client = Client()
    signup(client, "new@startup.test", password, full_name="Ada L", workspace_name="Startup Ltd")

    user = User.objects.get(email="new@startup.test")
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.OWNER
    assert membership.workspace.name == "Startup Ltd"
    assert re.fullmatch(r"Sender_\d{4,6}", membership.workspace.leaderboard_handle)
    assert AuditLog.objects.filter(action="workspace.create", actor=user).exists()

    # Unverified: login does not get in, it asks for the verification instead.
    response = client.post("/accounts/login/", {"login": user.email, "password": password})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    assert "_auth_user_id" not in client.session

    mail = smtp_mail.wait_for("new@startup.test")
    link = CONFIRM_LINK.search(smtp_mail.body(mail)).group(1)
    assert client.get(link).status_code == 200
    assert client.post(link).status_code == 302

    response = client.post(
        "/accounts/login/", {"login": user.email, "password": password}, follow=True
    )
    assert response.redirect_chain[-1][0] == f"/w/{membership.workspace.public_id}/"
    assert response.status_code == 200
    assert "Startup Ltd" in response.content.decode()


def test_it_refuses_a_bad_signup_and_writes_nothing(smtp_mail):
    client = Client()
    response = client.post(
        "/accounts/signup/",
        {"email": "not-an-email", "password1": "short", "password2": "other"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors
    assert not User.objects.exists()
    assert smtp_mail.messages == []


def test_it_does_not_make_an_invited_user_a_workspace_of_their_own(smtp_mail, owner, password):
    from accounts.services import invitation_create

    invitation_create(workspace=owner.workspace, inviter=owner.user, email="joiner@acme.test")
    signup(Client(), "joiner@acme.test", password)
    assert not Membership.objects.filter(user__email="joiner@acme.test").exists()


def test_it_enrols_totp_and_then_requires_a_code_at_login(owner, password):
    client = Client()
    response = client.post("/accounts/login/", {"login": owner.user.email, "password": password})
    assert response.status_code == 302

    secret = totp_activation_page(client, password).context["form"].secret

    response = client.post("/accounts/2fa/totp/activate/", {"code": "000000"})
    assert response.status_code == 200  # wrong code: form error, nothing enrolled
    assert not Authenticator.objects.filter(user=owner.user).exists()

    response = client.post("/accounts/2fa/totp/activate/", {"code": totp_now(secret)})
    assert response.status_code == 302
    authenticator = Authenticator.objects.get(user=owner.user, type=Authenticator.Type.TOTP)
    assert secret not in str(authenticator.data)  # encrypted at rest

    client.post("/accounts/logout/")
    fresh = Client()
    response = fresh.post("/accounts/login/", {"login": owner.user.email, "password": password})
    assert response["Location"] == "/accounts/2fa/authenticate/"
    assert "_auth_user_id" not in fresh.session

    response = fresh.post("/accounts/2fa/authenticate/", {"code": "123456"})
    assert response.status_code == 200
    assert "_auth_user_id" not in fresh.session

    response = fresh.post("/accounts/2fa/authenticate/", {"code": totp_now(secret)}, follow=True)
    assert fresh.session["_auth_user_id"] == str(owner.user.pk)
    assert response.redirect_chain[-1][0] == f"/w/{owner.workspace.public_id}/"


def test_staff_log_in_to_the_console_through_the_same_mfa(owner, password):
    owner.user.is_staff = True
    owner.user.save()
    client = Client()
    client.post("/accounts/login/", {"login": owner.user.email, "password": password})
    secret = totp_activation_page(client, password).context["form"].secret
    client.post("/accounts/2fa/totp/activate/", {"code": totp_now(secret)})

    staff = Client()
    page = staff.get("/admin/login/")
    assert page.status_code == 200
    response = staff.post(
        "/accounts/login/",
        {"login": owner.user.email, "password": password, "next": "/admin/"},
    )
    assert response["Location"] == "/accounts/2fa/authenticate/"
    assert staff.get("/admin/").status_code == 302  # not in yet
    response = staff.post("/accounts/2fa/authenticate/", {"code": totp_now(secret)})
    assert response["Location"] == "/admin/"
    assert staff.get("/admin/").status_code == 200


def test_password_reset_mails_a_working_link(smtp_mail, owner):
    client = Client()
    response = client.post("/accounts/password/reset/", {"email": owner.user.email})
    assert response.status_code == 302
    body = smtp_mail.body(smtp_mail.wait_for(owner.user.email))
    path = re.search(r"https?://[^/\s]+(/accounts/password/reset/key/[^\s]+/)", body).group(1)
    response = client.get(path, follow=True)
    form_path = response.redirect_chain[-1][0] if response.redirect_chain else path
    response = client.post(
        form_path, {"password1": "a-brand-new-secret-42", "password2": "a-brand-new-secret-42"}
    )
    assert response.status_code == 302
    owner.user.refresh_from_db()
    assert owner.user.check_password("a-brand-new-secret-42")
