"""In-process cache of servable models for the prediction hot path.

Every prediction needs the model's owner, status and schemas; reading them is a query per
request. Only `ready` models are kept (a model becomes servable once, in the worker, and stops
only through the API, which bumps the cache epoch), each under the epoch it was read at
(web/epoch.py), so a disabled or deleted model stops taking predictions in every process at once.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from shared.models import MLModel
from web import epoch
from web.auth.guard import current
from web.scoping import get_owned

ENTRY_TTL_S = 60
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class ServingModel:
    """What a prediction request reads of its model (no database session attached)."""

    id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    version: int
    status: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]

    @classmethod
    def of(cls, row: MLModel) -> ServingModel:
        return cls(
            row.id,
            row.owner_id,
            row.name,
            row.version,
            row.status,
            row.input_schema or {},
            row.output_schema or {},
        )


@dataclass(frozen=True)
class _Entry:
    epoch: bytes
    model: ServingModel
    cached_at: float


_entries: dict[uuid.UUID, _Entry] = {}
_lock = threading.Lock()


def owned_model(model_id: uuid.UUID) -> ServingModel:
    """The caller's model (404 for anyone else's, or a deleted one), from the cache when it can."""
    now = time.monotonic()
    entry = _entries.get(model_id)
    if (
        entry is not None
        and entry.epoch == epoch.current()
        and now - entry.cached_at <= ENTRY_TTL_S
        and entry.model.owner_id == current().id
    ):
        return entry.model
    model = ServingModel.of(get_owned(MLModel, model_id, "Model"))
    if model.status == "ready":
        _store(_Entry(epoch.current(), model, now))
    return model


def _store(entry: _Entry) -> None:
    with _lock:
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()  # crude but bounded; a refill costs one query per model
        _entries[entry.model.id] = entry
