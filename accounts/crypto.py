"""Secrets at rest: MultiFernet over the keys in SECRET_ENCRYPTION_KEYS.

The first key encrypts; every key decrypts, so a new key is rolled out by putting it first,
re-encrypting (`secret_rotate`), then dropping the old key.
"""

import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from config.errors import ApplicationError


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.SECRET_ENCRYPTION_KEYS))


def secret_encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def secret_decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ApplicationError(
            "A stored secret could not be decrypted: is its key still in SECRET_ENCRYPTION_KEYS?",
            code="secret_undecryptable",
            status=500,
        ) from None


def secret_rotate(token: str) -> str:
    """Re-encrypt a stored secret under the first (newest) key."""
    return fernet().rotate(token.encode()).decode()


@receiver(setting_changed)
def _keys_changed(*, setting: str, **kwargs: object) -> None:
    if setting == "SECRET_ENCRYPTION_KEYS":
        _fernet.cache_clear()


def secret_hash(secret: str) -> str:
    """SHA-256 of a high-entropy secret (tokens are random, so a fast hash is enough)."""
    return hashlib.sha256(secret.encode()).hexdigest()
