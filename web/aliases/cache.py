"""In-process cache of what each model name points at, checked against the cache epoch.

Resolving `churn@production` or a bare `churn` reads the name's versions, aliases and traffic:
three queries per request without a cache. Each process keeps what it read per (owner, name)
under the epoch it was read at (web/epoch.py); every change to an alias or traffic split, a
version's status or deletion, and a new version becoming ready bumps the epoch after committing.
So a moved alias takes effect in every process at once, and the prediction routes, which assume
their process's last epoch and have it checked where they act, pay no Redis read for it.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import select

from shared.aliases.table import ModelAlias, TrafficRoute
from shared.models import MLModel
from web import epoch
from web.extensions import db
from web.registry.cache import ServingModel

ENTRY_TTL_S = 60
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class NameState:
    """One owner's name: its versions (not deleted), aliases, traffic routes and shadow."""

    versions: dict[int, ServingModel]
    aliases: dict[str, int]
    routes: tuple[tuple[int, int], ...]  # (version, weight), by version
    shadow: tuple[int, int] | None  # (version, percent)

    @property
    def newest_ready(self) -> int | None:
        ready = [v for v, m in self.versions.items() if m.status == "ready"]
        return max(ready, default=None)


@dataclass(frozen=True)
class _Entry:
    epoch: bytes
    state: NameState
    cached_at: float


_entries: dict[tuple[uuid.UUID, str], _Entry] = {}
_lock = threading.Lock()


def name_state(owner_id: uuid.UUID, name: str) -> NameState:
    """The name as the caller sees it, from the cache while the epoch stands."""
    key = (owner_id, name)
    entry = _entries.get(key)
    current = epoch.current()
    if (
        entry is not None
        and entry.epoch == current
        and time.monotonic() - entry.cached_at <= ENTRY_TTL_S
    ):
        return entry.state
    state = load(owner_id, name)
    _store(key, _Entry(current, state, time.monotonic()))
    return state


def load(owner_id: uuid.UUID, name: str) -> NameState:
    """Read the name's state from the database (three index lookups)."""
    models = db.session.scalars(
        select(MLModel).where(
            MLModel.owner_id == owner_id, MLModel.name == name, MLModel.deleted_at.is_(None)
        )
    ).all()
    versions = {m.version: ServingModel.of(m) for m in models}
    by_id = {m.id: m.version for m in models}
    aliases = db.session.execute(
        select(ModelAlias.alias, ModelAlias.model_id).where(
            ModelAlias.owner_id == owner_id, ModelAlias.name == name
        )
    ).all()
    traffic = db.session.execute(
        select(TrafficRoute.model_id, TrafficRoute.role, TrafficRoute.weight).where(
            TrafficRoute.owner_id == owner_id, TrafficRoute.name == name
        )
    ).all()
    # Versions in ascending order: a stable bucket -> version map for sticky routing.
    routes = tuple(sorted((by_id[t.model_id], t.weight) for t in traffic if t.role == "route"))
    shadows = [(by_id[t.model_id], t.weight) for t in traffic if t.role == "shadow"]
    return NameState(
        versions=versions,
        aliases={a.alias: by_id[a.model_id] for a in aliases if a.model_id in by_id},
        routes=routes,
        shadow=shadows[0] if shadows else None,
    )


def _store(key: tuple[uuid.UUID, str], entry: _Entry) -> None:
    with _lock:
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()  # crude but bounded; a refill costs three queries per name
        _entries[key] = entry
