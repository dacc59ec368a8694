"""Model references (what a worker reads of a model to load and run it), cached per process
under the cache epoch (shared/cache_epoch.py).

A batch of sync predictions needs no claim query, so the model read would be its only one: one
Redis GET replaces it while nothing changed. Only servable models are kept: a model becomes ready
once (validation, here in the workers) and changes after that only through the API (disable,
delete, runtime choice), which bumps the epoch after committing.
"""

from __future__ import annotations

import uuid

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from workers.inference import ModelRef, load_model_ref

MAX_ENTRIES = 1_000

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


def clear() -> None:
    _refs.clear()
