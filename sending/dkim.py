"""DKIM key material (pure: no Django). The private key leaves here only as PEM for encryption."""

import base64
from dataclasses import dataclass
from datetime import date

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_BITS = 2048


@dataclass(frozen=True)
class DkimKeyPair:
    private_pem: str
    public_b64: str  # base64 DER SubjectPublicKeyInfo: the p= tag of the TXT record


def dkim_keypair_new(bits: int = KEY_BITS) -> DkimKeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return DkimKeyPair(private_pem=private_pem, public_b64=base64.b64encode(public_der).decode())


def dkim_selector_for(day: date, taken: set[str], prefix: str = "tg") -> str:
    """A dated selector (tg20261123), with a letter suffix if that day's one is taken."""
    base = f"{prefix}{day:%Y%m%d}"
    if base not in taken:
        return base
    for suffix in "bcdefghijklmnopqrstuvwxyz":
        if base + suffix not in taken:
            return base + suffix
    raise ValueError("too many DKIM selectors created on one day")


def dkim_txt_value(public_b64: str) -> str:
    return f"v=DKIM1; k=rsa; p={public_b64}"


def dkim_tags(txt: str) -> dict[str, str]:
    """Parse a DKIM key record's tag=value list (whitespace inside values is ignored)."""
    tags: dict[str, str] = {}
    for part in txt.split(";"):
        if "=" in part:
            key, _, value = part.partition("=")
            tags[key.strip().lower()] = "".join(value.split())
    return tags
