"""Schemas of the aliases and traffic endpoints (docs/aliases.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.aliases.routing import BUCKETS
from shared.schemas.analytics import Analytics
from shared.schemas.models import ModelOut

Version = Field(ge=1, le=999_999_999)


class AliasBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Version


class AliasOut(BaseModel):
    alias: str
    version: int
    previous_version: int | None = Field(
        description="The version the alias pointed to before (null if it is new): the argument "
        "of a one-call rollback"
    )


class RouteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Version
    weight: int = Field(ge=0, le=BUCKETS, description="Percent of the bare name's predictions")


class ShadowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Version
    percent: int = Field(ge=1, le=BUCKETS, description="Percent of requests also sent here")


class TrafficIn(BaseModel):
    """Integer weights summing to 100 over distinct versions; the shadow is none of them."""

    model_config = ConfigDict(extra="forbid")

    routes: list[RouteIn] = Field(min_length=1, max_length=BUCKETS)
    shadow: ShadowIn | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TrafficIn:
        versions = [r.version for r in self.routes]
        if len(set(versions)) != len(versions):
            raise ValueError("each version may appear once in routes")
        if sum(r.weight for r in self.routes) != BUCKETS:
            raise ValueError(f"route weights must sum to {BUCKETS}")
        if self.shadow is not None and self.shadow.version in versions:
            raise ValueError("the shadow version must not be one of the routes")
        return self


class TrafficOut(BaseModel):
    routes: list[RouteIn]
    shadow: ShadowIn | None = None


class NameOut(BaseModel):
    """A model name: its versions (newest first), aliases and traffic split."""

    name: str
    versions: list[ModelOut]
    aliases: dict[str, int]
    traffic: TrafficOut | None


class AliasEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: Literal["alias", "traffic"]
    alias: str | None
    from_version: int | None
    to_version: int | None
    traffic: dict[str, Any] | None
    actor_id: uuid.UUID | None
    at: datetime


class AliasEventList(BaseModel):
    items: list[AliasEventOut]


class ShadowAgreement(BaseModel):
    """How a shadow version's predictions compare with its primaries' on the same rows."""

    shadow_version: int
    primary_version: int
    jobs: int = Field(description="Shadow jobs that succeeded beside a succeeded primary")
    rows: int
    agreement: float | None = Field(description="Share of rows with equal predictions")
    mean_abs_diff: float | None = Field(
        None, description="Regressors: mean absolute difference of the predictions"
    )


class NameAnalytics(BaseModel):
    name: str
    days: int
    versions: dict[str, Analytics]
    shadow: list[ShadowAgreement]
