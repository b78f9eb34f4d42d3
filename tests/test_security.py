"""Security properties of the pages: where the console's login may send people, sign-in limits an
attacker cannot turn against the owner, the Content-Security-Policy, refusals that say 403, and
a password reset that mails nobody unknown."""

import re

import pytest
from django.test import Client
from django.urls import reverse
from playwright.sync_api import Browser

from accounts.models import ApiToken, Invitation, Membership, Role
from accounts.services import api_token_create, invitation_create
from sending.models import DomainStatus, Mailbox, SendingDomain
from tests import test_browser_phone
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

# Headless Chromium in a thread of its own, as the phone-width browser tests drive it.
chromium = test_browser_phone.chromium

ATTACKER = "198.51.100.7"
OWNER_HOME = "203.0.113.20"


# --- The console's login: `next` stays on this site --------------------------------------------


@pytest.fixture
def staff_client(settings) -> Client:
    settings.STAFF_MFA_REQUIRED = False
    client = Client()
    client.force_login(UserFactory(email="support@ops.test", is_staff=True))
    return client


@pytest.mark.parametrize("target", ["https://evil.example/phish", "//evil.example/x"])
def test_it_does_not_send_staff_to_another_site(staff_client, target):
    response = staff_client.get("/admin/login/", {"next": target})
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


def test_it_answers_a_script_url_with_the_console_not_an_error(staff_client):
    response = staff_client.get("/admin/login/", {"next": "javascript:alert(1)"})
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


def test_it_still_follows_a_next_path_on_this_site(staff_client):
    response = staff_client.get("/admin/login/", {"next": "/admin/sending/sendingdomain/"})
    assert response["Location"] == "/admin/sending/sendingdomain/"


# --- Sign-in limits ----------------------------------------------------------------------------


def sign_in(email: str, password: str, ip: str, **headers: str):
    client = Client(REMOTE_ADDR=ip, headers=headers)
    response = client.post(reverse("account_login"), {"login": email, "password": password})
    return client, response


def locked_out(response) -> bool:
    return response.status_code == 200 and "Too many failed sign-in attempts" in (
        response.content.decode()
    )


def client_addresses(**meta: str) -> tuple[str, str]:
    """The client address as the sign-in limits (allauth) and the API throttles (DRF) see it."""
    from allauth.account.adapter import get_adapter
    from rest_framework.test import APIRequestFactory
    from rest_framework.throttling import AnonRateThrottle

    request = APIRequestFactory().get("/api/v1/me/", **meta)
    return get_adapter().get_client_ip(request), AnonRateThrottle().get_ident(request)


def test_a_forwarded_for_header_from_a_client_does_not_change_its_address():
    spoofed = client_addresses(REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert spoofed == (ATTACKER, ATTACKER)


def test_behind_a_configured_proxy_the_forwarded_client_address_counts(settings):
    settings.TRUSTED_PROXY_COUNT = settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    # The proxy appends the address it saw; anything before that came from the client.
    forwarded = client_addresses(
        REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=f"10.9.9.9, {ATTACKER}"
    )
    assert forwarded == (ATTACKER, ATTACKER)


def test_spoofed_forwarded_addresses_get_no_extra_sign_in_attempts(user_factory):
    for n in range(5):  # five accounts guessed, each guess claiming another origin
        sign_in(f"user{n}@acme.test", "wrong", ATTACKER, x_forwarded_for=f"10.0.0.{n}")
    user_factory(email="late@acme.test")
    _, response = sign_in("late@acme.test", "wrong", ATTACKER, x_forwarded_for="10.0.0.99")
    assert locked_out(response)


def test_guesses_from_an_attacker_do_not_lock_the_owner_out(owner, password):
    email = owner.user.email
    for _ in range(12):
        sign_in(email, "wrong", ATTACKER)
    client, response = sign_in(email, password, OWNER_HOME)
    assert response.status_code == 302
    assert client.get(reverse("app_home")).status_code in (200, 302)
    assert "_auth_user_id" in client.session


def test_guessing_from_one_address_stops_even_at_the_right_password(owner, password):
    email = owner.user.email
    for _ in range(5):
        _, response = sign_in(email, "wrong", ATTACKER)
        assert not locked_out(response)
    _, response = sign_in(email, password, ATTACKER)
    assert locked_out(response)


def test_guessing_from_many_addresses_stops_and_the_owner_gets_in_by_reset(
    owner, password, mailoutbox
):
    email = owner.user.email
    for n in range(20):
        sign_in(email, "wrong", f"198.51.100.{n + 10}")
    _, response = sign_in(email, password, OWNER_HOME)
    assert locked_out(response)
    assert f'href="{reverse("account_reset_password")}"' in response.content.decode()

    client = Client(REMOTE_ADDR=OWNER_HOME)
    client.post(reverse("account_reset_password"), {"email": email})
    path = re.search(r"https?://[^/\s]+(/accounts/password/reset/key/\S+/)", mailoutbox[-1].body)
    response = client.get(path.group(1), follow=True)
    form_path = response.redirect_chain[-1][0] if response.redirect_chain else path.group(1)
    new_password = "a-brand-new-secret-42"
    client.post(form_path, {"password1": new_password, "password2": new_password})

    _, response = sign_in(email, new_password, OWNER_HOME)
    assert response.status_code == 302


# --- Password reset ----------------------------------------------------------------------------


def test_a_password_reset_for_an_unknown_address_mails_nothing(mailoutbox):
    response = Client().post(reverse("account_reset_password"), {"email": "nobody@else.test"})
    assert response.status_code == 302  # the same answer as for a known address
    assert mailoutbox == []


def test_a_password_reset_for_a_known_address_still_mails(owner, mailoutbox):
    Client().post(reverse("account_reset_password"), {"email": owner.user.email})
    assert [m.to for m in mailoutbox] == [[owner.user.email]]


# --- Content-Security-Policy -------------------------------------------------------------------


def _policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (part.split() for part in header.split(";") if part.strip())
    }


def test_every_kind_of_page_carries_the_policy(owner_client, owner, domain, settings):
    settings.STAFF_MFA_REQUIRED = False
    ws = owner.workspace.public_id
    staff = Client()
    staff.force_login(UserFactory(email="ops@ops.test", is_staff=True, is_superuser=True))
    pages = [
        (Client(), "/"),
        (Client(), reverse("account_login")),
        (Client(), reverse("account_reset_password")),
        (Client(), "/api/docs/"),
        (Client(), "/api/v1/me/"),  # a 401 in JSON
        (Client(), "/no-such-page/"),
        (owner_client, f"/w/{ws}/"),
        (owner_client, f"/w/{ws}/domains/{domain.public_id}/"),
        (owner_client, reverse("mfa_index")),
        (staff, "/admin/"),
        (staff, "/admin/sending/sendingdomain/"),
    ]
    for client, path in pages:
        response = client.get(path)
        policy = _policy(response)
        assert policy["script-src"][0] == "'self'", path
        assert "'unsafe-inline'" not in policy["script-src"], path
        assert "'unsafe-inline'" not in policy["style-src"], path
        assert policy["object-src"] == ["'none'"], path


def test_the_pages_have_no_inline_event_handlers(owner_client, owner, domain):
    ws = owner.workspace.public_id
    for path in (f"/w/{ws}/", f"/w/{ws}/domains/{domain.public_id}/", f"/w/{ws}/mailboxes/"):
        html = owner_client.get(path).content.decode()
        assert not re.search(r"\son[a-z]+=", html), path


# --- Refusals answer 403 -----------------------------------------------------------------------


@pytest.fixture
def member(owner) -> Membership:
    return MembershipFactory(
        workspace=owner.workspace, role=Role.MEMBER, user__email="member@acme.test"
    )


def test_a_member_is_refused_admin_actions_with_403(owner, member, domain):
    ws = owner.workspace.public_id
    other = MembershipFactory(workspace=owner.workspace, role=Role.MEMBER, user__email="o@x.test")
    invitation = invitation_create(
        workspace=owner.workspace, inviter=owner.user, email="new@acme.test"
    ).obj
    owners_token = api_token_create(user=owner.user, workspace=owner.workspace, name="ci").obj
    client = Client()
    client.force_login(member.user)
    refused = {
        f"/w/{ws}/domains/": {"name": "another-domain.com"},
        f"/w/{ws}/domains/{domain.public_id}/remove/": {},
        f"/w/{ws}/domains/{domain.public_id}/rotate-dkim/": {},
        f"/w/{ws}/settings/rename/": {"name": "Mine now"},
        f"/w/{ws}/settings/invitations/": {"email": "x@acme.test", "role": "member"},
        f"/w/{ws}/settings/invitations/{invitation.pk}/revoke/": {},
        f"/w/{ws}/settings/members/{other.pk}/role/": {"role": "admin"},
        f"/w/{ws}/settings/members/{other.pk}/remove/": {},
        f"/w/{ws}/settings/tokens/{owners_token.pk}/revoke/": {},
    }
    for path, data in refused.items():
        response = client.post(path, data)
        assert response.status_code == 403, (path, response.status_code)
    assert Membership.objects.filter(pk=other.pk, role=Role.MEMBER).exists()
    assert Invitation.objects.get(pk=invitation.pk).revoked_at is None
    assert ApiToken.objects.get(pk=owners_token.pk).revoked_at is None
    assert not Mailbox.objects.exists()


# --- The policy in a browser: nothing the pages need is blocked ---------------------------------

CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}`);
});
"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_pages_run_in_a_browser_without_policy_violations(
    live_server, chromium, owner, domain, settings
):
    settings.STAFF_MFA_REQUIRED = False
    owner.user.is_staff = owner.user.is_superuser = True
    owner.user.save(update_fields=["is_staff", "is_superuser"])
    session = Client()
    session.force_login(owner.user)
    cookie = {
        "name": settings.SESSION_COOKIE_NAME,
        "value": session.cookies[settings.SESSION_COOKIE_NAME].value,
        "url": live_server.url,
    }
    ws = owner.workspace.public_id
    paths = [
        f"/w/{ws}/",
        f"/w/{ws}/domains/{domain.public_id}/",
        f"/w/{ws}/settings/",
        "/admin/",
        "/admin/sending/sendingdomain/",
        f"/admin/sending/sendingdomain/{domain.pk}/change/",
        "/api/docs/",
    ]

    def steps(browser: Browser) -> None:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_cookies([cookie])
        page = context.new_page()
        page.set_default_timeout(10_000)
        reports: list[str] = []
        page.on(
            "console",
            lambda msg: reports.append(msg.text) if "Content Security Policy" in msg.text else None,
        )
        page.add_init_script(CSP_WATCH)
        for path in paths:
            page.goto(live_server.url + path)
            page.wait_for_load_state("networkidle")
            violations = page.evaluate("window.__cspViolations")
            assert violations == [] and reports == [], (path, violations, reports)

        # The confirmation that was an inline handler still asks; declining keeps the domain.
        page.goto(f"{live_server.url}/w/{ws}/domains/{domain.public_id}/")
        asked: list[str] = []
        page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
        page.get_by_role("button", name="Remove domain").click()
        page.wait_for_timeout(300)
        assert asked == [f"Remove {domain.name}?"]
        assert page.url.endswith(f"/domains/{domain.public_id}/")
        assert page.evaluate("window.__cspViolations") == [] and reports == []
        context.close()

    chromium.run(steps)
    assert SendingDomain.objects.filter(pk=domain.pk, status=DomainStatus.PENDING_DNS).exists()
