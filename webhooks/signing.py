"""The Standard Webhooks signature (https://www.standardwebhooks.com), with no Django import.

A secret is `whsec_` + base64 of 24 random bytes. Each request carries `webhook-id`,
`webhook-timestamp` (Unix seconds) and `webhook-signature`: `v1,` + base64 of
HMAC-SHA256(key = the decoded secret, message = "<id>.<timestamp>.<body>"). Receivers verify with
any Standard Webhooks library or the few lines in docs/webhooks.md."""

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24
# How far a receiver should accept a timestamp from its own clock (replay protection).
TOLERANCE_SECONDS = 5 * 60


class SignatureError(ValueError):
    """The request was not signed with this secret, or too long ago."""


def secret_new() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one request."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers_sign(*, secret: str, msg_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for a body sent at `at`."""
    timestamp = int(at.timestamp())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(
            secret=secret, msg_id=msg_id, timestamp=timestamp, body=body
        ),
    }


def verify(*, secret: str, headers: dict[str, str], body: bytes, now: datetime) -> None:
    """Raise SignatureError unless the headers sign `body` with `secret` within the tolerance."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id", "")
    stamp = lower.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit():
        raise SignatureError("Missing webhook-id or webhook-timestamp.")
    if abs(now.timestamp() - int(stamp)) > TOLERANCE_SECONDS:
        raise SignatureError("The timestamp is too far from now.")
    expected = signature(secret=secret, msg_id=msg_id, timestamp=int(stamp), body=body)
    # The header may carry several space-separated signatures (during a secret rotation).
    for candidate in lower.get("webhook-signature", "").split():
        if hmac.compare_digest(candidate, expected):
            return
    raise SignatureError("No matching signature.")
