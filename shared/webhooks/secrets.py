"""Signing secrets: made here (`whsec_` + base64 of random bytes, the Standard Webhooks form),
shown to their owner once, and kept encrypted at rest with the settings' keys.

The ciphertext is Fernet (AES-128-CBC + HMAC-SHA256). Each configured key is any string (at least
32 characters of entropy are the operator's business): HKDF turns it into a Fernet key, so a
passphrase-style WEBHOOK_ENCRYPTION_KEY works as well as a generated one. Several keys,
comma-separated, rotate: the first encrypts, any decrypts.
"""

from __future__ import annotations

import base64
import secrets
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.config import Settings

PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64
_INFO = b"mlsp webhook signing secrets"


class SecretUnreadable(Exception):
    """No configured key opens a stored secret (WEBHOOK_ENCRYPTION_KEY lost or rotated out)."""


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def encrypt(secret: str, settings: Settings) -> str:
    return _cipher(_keys(settings)).encrypt(secret.encode()).decode()


def decrypt(ciphertext: str, settings: Settings) -> str:
    try:
        return _cipher(_keys(settings)).decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("no WEBHOOK_ENCRYPTION_KEY opens this endpoint's secret") from None


def _keys(settings: Settings) -> tuple[str, ...]:
    configured = [k.strip() for k in settings.webhook_encryption_key.split(",") if k.strip()]
    return tuple(configured) or (settings.secret_key,)


@lru_cache(maxsize=4)
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_derive(key)) for key in keys])


def _derive(key: str) -> bytes:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(key.encode())
    return base64.urlsafe_b64encode(raw)
