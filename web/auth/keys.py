"""API keys: `mlp_` + 32 random bytes, stored only as SHA-256, checked on every request."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from shared.models import ApiKey, User
from shared.redis_client import PREFIX
from web import extensions
from web.extensions import db

KEY_PREFIX = "mlp_"
VISIBLE_CHARS = 12  # `mlp_` + 8 characters: enough to tell keys apart in a listing
LAST_USED_EVERY_S = 60


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(user: User, name: str, expires_in_days: int) -> tuple[ApiKey, str]:
    """Store a new key's hash; the key itself is returned once and never again."""
    key = new_key()
    row = ApiKey(
        user_id=user.id,
        name=name,
        prefix=key[:VISIBLE_CHARS],
        key_hash=key_hash(key),
        expires_at=datetime.now(UTC) + timedelta(days=expires_in_days),
    )
    db.session.add(row)
    db.session.commit()
    return row, key


def resolve_key(key: str) -> tuple[ApiKey, User] | None:
    """The active, unexpired key and its user, or None."""
    if not key.startswith(KEY_PREFIX) or len(key) > 128:
        return None
    row = db.session.execute(
        select(ApiKey, User).join(User).where(ApiKey.key_hash == key_hash(key))
    ).first()
    if row is None:
        return None
    api_key, user = row
    if not api_key.is_active or (api_key.expires_at and api_key.expires_at <= datetime.now(UTC)):
        return None
    return api_key, user


_touched: dict[uuid.UUID, float] = {}  # key id -> when this process last recorded a use


def touch_last_used(key_id: uuid.UUID) -> None:
    """Record use at most once a minute per key: this process skips keys it recorded within the
    minute, and a Redis NX flag lets one process in the deployment do the database write."""
    now = time.monotonic()
    if now - _touched.get(key_id, -LAST_USED_EVERY_S) < LAST_USED_EVERY_S:
        return
    _touched[key_id] = now
    if not extensions.redis().set(f"{PREFIX}key-used:{key_id}", 1, nx=True, ex=LAST_USED_EVERY_S):
        return
    db.session.execute(
        update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=datetime.now(UTC))
    )
    db.session.commit()
