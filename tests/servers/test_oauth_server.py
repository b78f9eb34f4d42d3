"""The loopback identity provider behaves as an OAuth 2.0 provider must (RFC 6749 with PKCE,
RFC 7662 introspection), so tests of mailbox connections can rely on it."""

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.servers.oauth import CLIENT_ID, CLIENT_SECRET, IdentityProvider

REDIRECT = "http://127.0.0.1:9/callback"


@pytest.fixture
def idp():
    with IdentityProvider(email="alex@acme-sales.com") as provider:
        yield provider


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize(idp, challenge: str, state: str = "st-1") -> str:
    """Consent on the provider's page; the code it sends back."""
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": "https://mail.google.com/",
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    page = httpx.get(f"{idp.url}/authorize", params=params)
    assert page.status_code == 200 and "alex@acme-sales.com" in page.text
    back = httpx.post(f"{idp.url}/authorize", data=params)
    assert back.status_code == 302
    location = urlsplit(back.headers["location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    assert query["state"] == [state]
    return query["code"][0]


def token(idp, **form) -> httpx.Response:
    return httpx.post(
        f"{idp.url}/token", data={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **form}
    )


def test_the_code_flow_with_pkce_gives_tokens_that_introspect_and_read_userinfo(idp):
    verifier, challenge = pkce()
    code = authorize(idp, challenge)
    answer = token(
        idp,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=verifier,
    )
    assert answer.status_code == 200
    tokens = answer.json()
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"]
    seen = httpx.post(f"{idp.url}/introspect", data={"token": tokens["access_token"]}).json()
    assert seen == {
        "active": True,
        "email": "alex@acme-sales.com",
        "username": "alex@acme-sales.com",
    }
    me = httpx.get(
        f"{idp.url}/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.json()["email"] == "alex@acme-sales.com"
    # The code is single-use.
    again = token(
        idp,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=verifier,
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_a_wrong_verifier_or_client_secret_is_refused(idp):
    _verifier, challenge = pkce()
    code = authorize(idp, challenge)
    wrong = token(
        idp,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=secrets.token_urlsafe(48),
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    bad_client = httpx.post(
        f"{idp.url}/token",
        data={"client_id": CLIENT_ID, "client_secret": "nope", "grant_type": "refresh_token"},
    )
    assert bad_client.status_code == 401
    no_pkce = httpx.get(
        f"{idp.url}/authorize",
        params={"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT},
    )
    assert no_pkce.status_code == 400


def test_refresh_expiry_and_revocation(idp):
    verifier, challenge = pkce()
    code = authorize(idp, challenge)
    tokens = token(
        idp,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=verifier,
    ).json()
    idp.expire_access_tokens()
    assert httpx.post(f"{idp.url}/introspect", data={"token": tokens["access_token"]}).json() == {
        "active": False
    }
    fresh = token(idp, grant_type="refresh_token", refresh_token=tokens["refresh_token"]).json()
    assert fresh["access_token"] != tokens["access_token"]
    assert httpx.post(f"{idp.url}/introspect", data={"token": fresh["access_token"]}).json()[
        "active"
    ]
    assert idp.refresh_requests == 1
    idp.revoke_refresh_tokens()
    revoked = token(idp, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert revoked.status_code == 400 and revoked.json()["error"] == "invalid_grant"
