"""The tables of aliases (`model_aliases`), traffic routes (`model_traffic`) and their audit
trail (`model_alias_events`), all keyed by owner and model name.

Aliases and routes point at a version by its model row (`model_id`), so that a disable or delete
of that version can find what points at it (registry routes answer 409) and a deleted user's rows
go with the user.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, String, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.orm import Base, created, one_of, uuid_pk

ALIAS_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
RESERVED_ALIASES = frozenset({"latest"})
ROUTE_ROLES = ("route", "shadow")
EVENT_KINDS = ("alias", "traffic")


class ModelAlias(Base):
    """`name@alias` of one owner points at one version of `name`."""

    __tablename__ = "model_aliases"

    owner_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    alias: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("models.id", ondelete="CASCADE")
    )
    updated_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (Index("ix_model_aliases_model_id", "model_id"),)


class TrafficRoute(Base):
    """One version's share of a bare name's predictions (`route`, weight in percent), or the
    version that a percentage of them is copied to (`shadow`, weight = that percentage)."""

    __tablename__ = "model_traffic"

    owner_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    model_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(8), primary_key=True)
    weight: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (
        CheckConstraint(one_of("role", ROUTE_ROLES), name="role"),
        CheckConstraint("weight BETWEEN 0 AND 100", name="weight"),
        Index("ix_model_traffic_model_id", "model_id"),
    )


class AliasEvent(Base):
    """Who moved which alias (or set which traffic) of a name, when, from what to what."""

    __tablename__ = "model_alias_events"

    id: Mapped[uuid.UUID] = uuid_pk()
    owner_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(8))
    alias: Mapped[str | None] = mapped_column(String(32))
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    # The traffic set (routes and shadow) for a `traffic` event; null when it was removed.
    traffic: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    at: Mapped[datetime] = created()

    __table_args__ = (
        CheckConstraint(one_of("kind", EVENT_KINDS), name="kind"),
        Index("ix_model_alias_events_owner_name_at", "owner_id", "name", "at"),
    )
