"""The OAuth rules with no Django (sending/oauth.py), and what an SMTP server that has SMTP AUTH
switched off (Microsoft 365's default from 2026) tells the customer."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult
from hypothesis import given
from hypothesis import strategies as st

from sending.connection_test import ServerSpec, smtp_login
from sending.oauth import (
    AnswerError,
    access_expiry,
    authorize_params,
    id_token_claims,
    needs_refresh,
    refresh_expiry,
    signed_in_address,
    xoauth2,
)
from sending.oauth import testing_mode as is_testing_mode
from tests.servers.mail import free_port

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def jwt(claims: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


claim_values = st.one_of(st.text(max_size=30), st.integers(), st.booleans(), st.none())


@given(st.dictionaries(st.text(min_size=1, max_size=20), claim_values, max_size=8))
def test_id_token_claims_read_back_what_was_encoded(claims):
    assert id_token_claims(jwt(claims)) == claims


@given(st.text(max_size=60))
def test_anything_that_is_not_a_token_is_refused_with_a_clear_error(text):
    try:
        claims = id_token_claims(text)
    except AnswerError as error:
        assert "ID token is malformed" in str(error)
    else:  # only three dot-separated parts whose middle is a JSON object get through
        assert text.count(".") == 2 and isinstance(claims, dict)


def test_the_address_comes_from_email_then_the_microsoft_sign_in_name():
    assert signed_in_address({"email": "Alex@Acme.com"}, client_id="c") == "alex@acme.com"
    assert (
        signed_in_address({"preferred_username": "sam@contoso.com", "aud": "c"}, client_id="c")
        == "sam@contoso.com"
    )
    assert signed_in_address({"preferred_username": "not-an-address"}, client_id="c") == ""
    assert signed_in_address({"aud": ["x", "c"], "email": "a@b.co"}, client_id="c") == "a@b.co"


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"aud": "other-app", "email": "a@b.co"}, "issued to another application"),
        ({"email": "a@b.co", "email_verified": False}, "not verified"),
    ],
)
def test_a_token_for_another_app_or_an_unverified_address_is_refused(claims, message):
    with pytest.raises(AnswerError, match=message):
        signed_in_address(claims, client_id="c")


@given(st.integers(min_value=1, max_value=30 * 86400))
def test_testing_mode_is_only_a_google_refresh_token_that_ends_within_a_week(seconds):
    expires = refresh_expiry({"refresh_token_expires_in": seconds}, now=NOW)
    assert expires == NOW + timedelta(seconds=seconds)
    assert is_testing_mode("google", connected_at=NOW, refresh_expires_at=expires) == (
        seconds <= 7 * 86400 + 3600
    )
    assert not is_testing_mode("microsoft", connected_at=NOW, refresh_expires_at=expires)
    assert not is_testing_mode("google", connected_at=NOW, refresh_expires_at=None)


@given(st.one_of(st.none(), st.text(max_size=5), st.integers(-10, 10**6), st.booleans()))
def test_access_expiry_is_always_in_the_future(expires_in):
    expiry = access_expiry({"expires_in": expires_in}, now=NOW)
    assert expiry > NOW
    if isinstance(expires_in, int) and not isinstance(expires_in, bool) and expires_in > 0:
        assert expiry == NOW + timedelta(seconds=expires_in)


@given(st.integers(-7200, 7200), st.integers(0, 3600))
def test_a_token_is_refreshed_exactly_when_less_than_the_margin_is_left(left, ahead):
    expires = NOW + timedelta(seconds=left)
    assert needs_refresh(expires, now=NOW, ahead=timedelta(seconds=ahead)) == (left <= ahead)
    assert needs_refresh(None, now=NOW, ahead=timedelta(seconds=ahead))


def test_google_is_asked_for_offline_access_and_a_fresh_consent_each_time():
    assert authorize_params("google") == {
        "access_type": "offline",
        "prompt": "consent select_account",
    }
    assert authorize_params("microsoft", login_hint="a@b.co") == {
        "prompt": "select_account",
        "login_hint": "a@b.co",
    }
    assert xoauth2("a@b.co", "tok") == "user=a@b.co\x01auth=Bearer tok\x01\x01"


# --- Microsoft 365 with SMTP AUTH switched off ---------------------------------------------


class _AuthOff:
    """Answers every login the way Exchange Online does with SMTP AUTH off."""

    async def auth_XOAUTH2(self, smtp: SMTP, args: list[str]) -> AuthResult:
        return AuthResult(
            success=False,
            handled=False,
            message="550 5.7.30 Basic authentication is not supported for Client Submission.",
        )


def _tenant_off(server, session, envelope, mechanism, auth_data) -> AuthResult:
    return AuthResult(
        success=False,
        handled=False,
        message="535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled "
        "for the Tenant.",
    )


@pytest.fixture(scope="module")
def smtp_auth_off():
    port = free_port()
    controller = Controller(
        _AuthOff(),
        hostname="127.0.0.1",
        port=port,
        authenticator=_tenant_off,
        auth_require_tls=False,
        server_hostname="localhost",
    )
    controller.start()
    yield port
    controller.stop()


def test_smtp_auth_switched_off_says_what_the_admin_switches_on(smtp_auth_off):
    asked: list[str] = []

    def tokens(refused: str) -> str:
        asked.append(refused)
        return "token"

    spec = ServerSpec("127.0.0.1", smtp_auth_off, "none", "sam@contoso.com", "", oauth=tokens)
    oauth = smtp_login(spec, timeout=5, allow_private=True)
    password = smtp_login(
        ServerSpec("127.0.0.1", smtp_auth_off, "none", "sam@contoso.com", "secret"),
        timeout=5,
        allow_private=True,
    )
    for result in (oauth, password):
        assert (result.ok, result.reason) == (False, "smtp_auth_disabled")
        assert "Authenticated SMTP" in result.message
    assert asked == [""]  # not a token problem: no refresh was asked for
