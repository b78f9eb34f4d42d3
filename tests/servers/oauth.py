"""A loopback OAuth 2.0 identity provider for tests, playing Google or Microsoft for mailbox
connections: authorize (a consent page, or straight back when told to), token (authorization
code with PKCE S256, refresh), introspection (what Dovecot's oauth2 passdb and the test SMTP
server ask) and userinfo.

::

    with IdentityProvider(email="alex@acme-sales.com") as idp:
        ...  # idp.url + "/authorize", "/token", "/introspect", "/userinfo"
        idp.revoke_refresh_tokens()  # the customer withdrew the grant
        idp.expire_access_tokens()   # every access token issued so far stops working

Registered as a pytest plugin, it gives ``identity_provider``: one for the session (the test
Dovecot checks tokens against it), signed in as whoever ``sign_in_as`` last named.

Counters (``token_requests``, ``refresh_requests``) let tests see how often the app came back.
Answers follow RFC 6749 (errors as ``{"error": ...}`` with 400) and RFC 7662 (introspection).
"""

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret"


@dataclass
class _Grant:
    email: str
    scope: str
    redirect_uri: str
    challenge: str
    client_id: str


@dataclass
class _State:
    email: str
    access_seconds: int
    approve_without_page: bool
    # Google's answer for an app in "Testing" mode: the refresh token ends after 7 days.
    refresh_expires_in: int | None = None
    # While set (and not yet opened), a refresh is held after it was counted: a test keeps one
    # refresh in flight while it looks at what a second worker does meanwhile.
    refresh_gate: threading.Event | None = None
    codes: dict[str, _Grant] = field(default_factory=dict)
    access: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> email, expiry
    refresh: dict[str, str] = field(default_factory=dict)  # token -> email
    token_requests: int = 0
    refresh_requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class _Handler(BaseHTTPRequestHandler):
    state: _State

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # --- plumbing ---

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    def _redirect(self, url: str) -> None:
        self.send_response(302)
        self.send_header("Location", url)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _client_ok(self, form: dict[str, str]) -> bool:
        given = (form.get("client_id"), form.get("client_secret"))
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            pair = base64.b64decode(header[6:]).decode().split(":", 1)
            given = (pair[0], pair[1] if len(pair) > 1 else "")
        return given == (CLIENT_ID, CLIENT_SECRET)

    # --- endpoints ---

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/authorize":
            self._authorize(query)
        elif parts.path == "/userinfo":
            self._userinfo()
        else:
            self._json(404, {"error": "not_found"})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        form = self._form()
        if path == "/authorize":
            self._approve(form)
        elif path == "/token":
            self._token(form)
        elif path == "/introspect":
            self._introspect(form)
        else:
            self._json(404, {"error": "not_found"})

    def _authorize(self, query: dict[str, str]) -> None:
        if query.get("response_type") != "code" or query.get("client_id") != CLIENT_ID:
            self._json(400, {"error": "invalid_request"})
            return
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            self._json(400, {"error": "invalid_request", "error_description": "PKCE required"})
            return
        if self.state.approve_without_page:
            self._approve(query)
            return
        fields = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in query.items()
        )
        page = (
            "<!DOCTYPE html><html><head><title>Sign in - Test provider</title></head><body>"
            f"<h1>Allow access to {html.escape(self.state.email)}'s mail?</h1>"
            f'<form method="post" action="/authorize">{fields}'
            '<button type="submit">Allow</button>'
            '<button type="submit" name="deny" value="1">Cancel</button></form></body></html>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def _approve(self, params: dict[str, str]) -> None:
        back = params.get("redirect_uri", "")
        if params.get("deny"):
            query = urlencode({"error": "access_denied", "state": params.get("state", "")})
            self._redirect(f"{back}{'&' if '?' in back else '?'}{query}")
            return
        code = secrets.token_urlsafe(16)
        with self.state.lock:
            self.state.codes[code] = _Grant(
                email=self.state.email,
                scope=params.get("scope", ""),
                redirect_uri=params.get("redirect_uri", ""),
                challenge=params.get("code_challenge", ""),
                client_id=params.get("client_id", ""),
            )
        query = urlencode({"code": code, "state": params.get("state", "")})
        self._redirect(f"{back}{'&' if '?' in back else '?'}{query}")

    def _issue(self, email: str, scope: str, refresh: str | None = None) -> dict[str, Any]:
        access = secrets.token_urlsafe(24)
        with self.state.lock:
            self.state.access[access] = (email, time.time() + self.state.access_seconds)
            if refresh is None:
                refresh = secrets.token_urlsafe(24)
                self.state.refresh[refresh] = email
        payload = {
            "sub": hashlib.sha256(email.encode()).hexdigest()[:16],
            "aud": CLIENT_ID,
            "email": email,
            "email_verified": True,
            "name": email.split("@")[0].title(),
        }
        id_token = ".".join(
            base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
            for part in ({"alg": "none"}, payload)
        )
        answer: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.state.access_seconds,
            "refresh_token": refresh,
            "scope": scope,
            "id_token": id_token + ".",
        }
        if self.state.refresh_expires_in is not None:
            answer["refresh_token_expires_in"] = self.state.refresh_expires_in
        return answer

    def _token(self, form: dict[str, str]) -> None:
        if not self._client_ok(form):
            self._json(401, {"error": "invalid_client"})
            return
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            with self.state.lock:
                self.state.token_requests += 1
                grant = self.state.codes.pop(form.get("code", ""), None)  # codes are single-use
            verifier = form.get("code_verifier", "")
            if (
                grant is None
                or grant.redirect_uri != form.get("redirect_uri")
                or not verifier
                or _s256(verifier) != grant.challenge
            ):
                self._json(400, {"error": "invalid_grant"})
                return
            self._json(200, self._issue(grant.email, grant.scope))
        elif grant_type == "refresh_token":
            token = form.get("refresh_token", "")
            with self.state.lock:
                self.state.refresh_requests += 1
                email = self.state.refresh.get(token)
            if self.state.refresh_gate is not None:
                self.state.refresh_gate.wait(timeout=10)
            if email is None:
                self._json(400, {"error": "invalid_grant", "error_description": "revoked"})
                return
            self._json(200, self._issue(email, form.get("scope", ""), refresh=token))
        else:
            self._json(400, {"error": "unsupported_grant_type"})

    def _active(self, token: str) -> str | None:
        with self.state.lock:
            found = self.state.access.get(token)
        if found is None or found[1] < time.time():
            return None
        return found[0]

    def _introspect(self, form: dict[str, str]) -> None:
        email = self._active(form.get("token", ""))
        if email is None:
            self._json(200, {"active": False})
        else:
            self._json(200, {"active": True, "email": email, "username": email})

    def _userinfo(self) -> None:
        header = self.headers.get("Authorization", "")
        email = self._active(header[7:]) if header.startswith("Bearer ") else None
        if email is None:
            self._json(401, {"error": "invalid_token"})
        else:
            self._json(200, {"email": email, "email_verified": True})


class IdentityProvider:
    def __init__(
        self,
        *,
        email: str = "alex@acme-sales.com",
        access_seconds: int = 3600,
        approve_without_page: bool = False,
    ) -> None:
        self.state = _State(email, access_seconds, approve_without_page)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def token_requests(self) -> int:
        return self.state.token_requests

    @property
    def refresh_requests(self) -> int:
        return self.state.refresh_requests

    def access_token_for(self, email: str) -> str:
        """An access token for `email` through the whole code flow with PKCE, over HTTP."""
        import httpx

        verifier = secrets.token_urlsafe(48)
        redirect = "http://127.0.0.1:9/cb"
        self.sign_in_as(email)
        back = httpx.post(
            f"{self.url}/authorize",
            data={
                "response_type": "code",
                "client_id": CLIENT_ID,
                "redirect_uri": redirect,
                "code_challenge": _s256(verifier),
                "code_challenge_method": "S256",
                "state": "s",
            },
        )
        code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
        answer = httpx.post(
            f"{self.url}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect,
                "code_verifier": verifier,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
        )
        return str(answer.json()["access_token"])

    def sign_in_as(self, email: str) -> None:
        self.state.email = email

    def revoke_refresh_tokens(self) -> None:
        with self.state.lock:
            self.state.refresh.clear()

    def expire_access_tokens(self) -> None:
        with self.state.lock:
            self.state.access = {t: (e, 0.0) for t, (e, _) in self.state.access.items()}

    def __enter__(self) -> "IdentityProvider":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def identity_provider() -> Iterator[IdentityProvider]:
    with IdentityProvider() as provider:
        yield provider
