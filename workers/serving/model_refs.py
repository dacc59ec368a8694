"""Model references (what a worker reads of a model to load and run it), cached per process
under the cache epoch (shared/cache_epoch.py).

A batch of sync predictions needs no claim query, so the model read would be its only one: one
Redis GET replaces it while nothing changed. Only servable models are kept: a model becomes ready
once (validation, here in the workers) and changes after that only through the API (disable,
delete, runtime choice), which bumps the epoch after committing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

MAX_ENTRIES = 1_000


@dataclass
class ModelRef:
    """What a worker needs to know about a model to load and run it: its artifact, and the
    runtime the next job uses with the compiled ONNX artifact (workers/runtimes/selection.py)."""

    id: uuid.UUID
    status: str
    deleted: bool
    sha256: str
    artifact_key: str
    format: str
    size_bytes: int
    input_schema: dict[str, Any] | None
    runtime: str | None = None
    onnx_key: str | None = None
    onnx_sha256: str | None = None
    onnx_size_bytes: int | None = None
    owner_id: uuid.UUID | None = None

    @property
    def servable(self) -> bool:
        return self.status == "ready" and not self.deleted


_refs: dict[uuid.UUID, tuple[bytes, ModelRef]] = {}


def cached(model_id: uuid.UUID, epoch: bytes) -> ModelRef | None:
    hit = _refs.get(model_id)
    return hit[1] if hit is not None and hit[0] == epoch else None


def load(session: Session | Connection, model_id: uuid.UUID, epoch: bytes) -> ModelRef | None:
    """Read the reference, keeping it under the epoch read before (so a change committed in
    between is never cached as current)."""
    ref = load_model_ref(session, model_id)
    if ref is not None and ref.servable:
        if len(_refs) >= MAX_ENTRIES:
            _refs.clear()
        _refs[model_id] = (epoch, ref)
    else:
        _refs.pop(model_id, None)
    return ref


def load_model_ref(session: Session | Connection, model_id: uuid.UUID) -> ModelRef | None:
    """The model's reference read from its row, uncached (None: no such row)."""
    row = session.execute(
        text(
            "SELECT id, status, deleted_at IS NOT NULL AS deleted, sha256, artifact_key, format,"
            " size_bytes, input_schema, runtime, onnx_key, onnx_sha256, onnx_size_bytes,"
            " owner_id"
            " FROM models WHERE id = :id"
        ),
        {"id": model_id},
    ).first()
    return None if row is None else ModelRef(**row._mapping)


def clear() -> None:
    _refs.clear()
