"""Signed, expiring tokens naming a message (opens) or one link of a message (clicks).

A token is `<value>:<timestamp>:<signature>` (Django's TimestampSigner, keyed by the server's
secret, one salt per kind), so a forged, altered or expired one is refused, and an open token
can never pass for a click token or the reverse."""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core import signing

OPEN_SALT = "tracking.open"
CLICK_SALT = "tracking.click"
DEFAULT_TOKEN_DAYS = 180


class TokenRefused(Exception):
    """The token is forged, altered, expired or malformed."""


@dataclass(frozen=True)
class ClickTarget:
    message_id: int
    position: int


def token_lifetime() -> timedelta:
    return timedelta(days=getattr(settings, "TRACKING_TOKEN_DAYS", DEFAULT_TOKEN_DAYS))


def open_token(message_id: int) -> str:
    return signing.TimestampSigner(salt=OPEN_SALT).sign(signing.b62_encode(message_id))


def click_token(message_id: int, position: int) -> str:
    value = f"{signing.b62_encode(message_id)}.{position}"
    return signing.TimestampSigner(salt=CLICK_SALT).sign(value)


def _unsign(token: str, salt: str) -> str:
    try:
        return signing.TimestampSigner(salt=salt).unsign(token, max_age=token_lifetime())
    except signing.BadSignature as error:  # SignatureExpired is one too
        raise TokenRefused(str(error)) from error


def _number(text: str) -> int:
    # b62_decode accepts a sign; a signed value is ours, but refuse anything odd anyway.
    if not text or not text.isalnum() or len(text) > 12:
        raise TokenRefused("malformed token")
    return signing.b62_decode(text)


def open_token_read(token: str) -> int:
    """The message an open token names; TokenRefused otherwise."""
    return _number(_unsign(token, OPEN_SALT))


def click_token_read(token: str) -> ClickTarget:
    """The (message, link position) a click token names; TokenRefused otherwise."""
    message, dot, position = _unsign(token, CLICK_SALT).partition(".")
    if not dot or not position.isdigit() or len(position) > 4:
        raise TokenRefused("malformed token")
    return ClickTarget(message_id=_number(message), position=int(position))
