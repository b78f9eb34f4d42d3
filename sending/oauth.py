"""OAuth 2.0 mailboxes at Google and Microsoft: the rules with no Django in them.

A mailbox connected this way logs in to its provider's SMTP and IMAP servers with XOAUTH2 and a
short-lived access token instead of a password; the refresh token gets new access tokens until
the customer (or their admin) withdraws the grant."""

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

GOOGLE = "google"
MICROSOFT = "microsoft"
# Google's one scope for IMAP and SMTP; Microsoft's two, plus offline_access for a refresh token.
# openid and email make the provider name the signed-in mailbox in its ID token.
SCOPES: dict[str, tuple[str, ...]] = {
    GOOGLE: ("openid", "email", "https://mail.google.com/"),
    MICROSOFT: (
        "openid",
        "email",
        "offline_access",
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
    ),
}
LABELS = {GOOGLE: "Google", MICROSOFT: "Microsoft"}
# Google ends refresh tokens after 7 days while its OAuth app is in "Testing" mode.
TESTING_MODE_LIFETIME = timedelta(days=7, hours=1)
# Token-endpoint errors that mean the grant is gone: only the customer signing in again helps.
GRANT_GONE = frozenset({"invalid_grant", "interaction_required", "consent_required"})


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    security: str  # ssl | starttls


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    client_id: str
    client_secret: str
    authorize_url: str
    token_url: str
    userinfo_url: str
    smtp: Server
    imap: Server

    @property
    def label(self) -> str:
        return LABELS[self.name]

    @property
    def scopes(self) -> tuple[str, ...]:
        return SCOPES[self.name]

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.client_secret)


def provider_config(name: str, raw: Mapping[str, Any]) -> ProviderConfig:
    """A provider from its settings entry (see OAUTH_PROVIDERS in the settings)."""
    if name not in SCOPES:
        raise KeyError(name)
    return ProviderConfig(
        name=name,
        client_id=str(raw.get("client_id") or ""),
        client_secret=str(raw.get("client_secret") or ""),
        authorize_url=str(raw["authorize_url"]),
        token_url=str(raw["token_url"]),
        userinfo_url=str(raw.get("userinfo_url") or ""),
        smtp=Server(*raw["smtp"]),
        imap=Server(*raw["imap"]),
    )


def authorize_params(provider: str, *, login_hint: str = "") -> dict[str, str]:
    """Extra query parameters for the consent page: Google gives a refresh token only for
    offline access and, on a repeat consent, only when asked to show the consent again; both
    let an agency pick another account for each mailbox."""
    params = (
        {"access_type": "offline", "prompt": "consent select_account"}
        if provider == GOOGLE
        else {"prompt": "select_account"}
    )
    if login_hint:
        params["login_hint"] = login_hint
    return params


class AnswerError(ValueError):
    """The provider's answer cannot be used; the message says why, for the customer."""


def id_token_claims(id_token: str) -> dict[str, Any]:
    """The claims of an ID token received straight from the token endpoint over TLS (OpenID
    Connect Core 3.1.3.7: TLS vouches for the issuer there, so the signature is not needed)."""
    parts = id_token.split(".")
    if len(parts) != 3:
        raise AnswerError("The provider's ID token is malformed.")
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (binascii.Error, ValueError) as error:
        raise AnswerError("The provider's ID token is malformed.") from error
    if not isinstance(claims, dict):
        raise AnswerError("The provider's ID token is malformed.")
    return claims


def signed_in_address(claims: Mapping[str, Any], *, client_id: str) -> str:
    """The mailbox the customer signed in as, from ID token or userinfo claims ("" if none).

    Google names it in `email`; Microsoft in `email` when the account has one, otherwise in
    `preferred_username` (the sign-in name, which for a mailbox is its address)."""
    audience = claims.get("aud")
    if audience is not None:
        audiences = audience if isinstance(audience, list) else [audience]
        if client_id not in audiences:
            raise AnswerError("The provider's ID token was issued to another application.")
    if claims.get("email_verified") is False:
        raise AnswerError("The provider has not verified this account's address.")
    for key in ("email", "preferred_username", "upn"):
        value = str(claims.get(key) or "").strip().lower()
        if value.count("@") == 1 and all(value.split("@")):
            return value
    return ""


def refresh_expiry(token: Mapping[str, Any], *, now: datetime) -> datetime | None:
    """When the refresh token itself runs out, if the provider says (Google does for apps in
    Testing mode with `refresh_token_expires_in`)."""
    seconds = token.get("refresh_token_expires_in")
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds > 0:
        return now + timedelta(seconds=seconds)
    return None


def testing_mode(
    provider: str, *, connected_at: datetime, refresh_expires_at: datetime | None
) -> bool:
    """Google's app is in Testing mode: its refresh tokens end 7 days after consent."""
    return (
        provider == GOOGLE
        and refresh_expires_at is not None
        and refresh_expires_at - connected_at <= TESTING_MODE_LIFETIME
    )


def access_expiry(token: Mapping[str, Any], *, now: datetime) -> datetime:
    """When the access token runs out (an hour when the provider does not say)."""
    seconds = token.get("expires_in")
    if isinstance(seconds, str) and seconds.isascii() and seconds.isdigit():
        seconds = int(seconds)
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds <= 0:
        seconds = 3600
    return now + timedelta(seconds=seconds)


def needs_refresh(expires_at: datetime | None, *, now: datetime, ahead: timedelta) -> bool:
    """Refresh before the token runs out, not after a login fails."""
    return expires_at is None or expires_at - now <= ahead


def xoauth2(user: str, access_token: str) -> str:
    """The XOAUTH2 SASL initial response (before base64), for IMAP and SMTP alike."""
    return f"user={user}\x01auth=Bearer {access_token}\x01\x01"
