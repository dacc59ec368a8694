"""Schemas of accounts, tokens, API keys and admin endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # Argon2 has no 72-byte limit; this only bounds hashing work


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Credentials(Strict):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)

    @field_validator("email")
    @classmethod
    def _normalise_email(cls, value: str) -> str:
        value = value.strip().lower()
        local, _, domain = value.partition("@")
        if not local or "." not in domain or " " in value or domain.startswith("."):
            raise ValueError("not a valid email address")
        return value


class LoginIn(Strict):
    # Any length is accepted at login, so a wrong password never reveals the policy.
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    is_admin: bool
    is_active: bool = True
    created_at: datetime


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 - a scheme name, not a secret
    expires_in: int


class AccessToken(BaseModel):
    access_token: str
    # Refresh tokens rotate: the one used is revoked and this one replaces it.
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 - a scheme name, not a secret
    expires_in: int


class ApiKeyCreate(Strict):
    name: str = Field(min_length=1, max_length=100)
    expires_in_days: int = Field(90, ge=1, le=365)


class ApiKeyPatch(Strict):
    name: str | None = Field(None, min_length=1, max_length=100)
    is_active: bool | None = None


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str
    is_active: bool
    expires_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class ApiKeyCreated(ApiKeyOut):
    key: str


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]


class UserPatch(Strict):
    is_active: bool


class UserList(BaseModel):
    items: list[UserOut]
    page: int
    per_page: int
    total: int
