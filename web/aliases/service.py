"""Aliases and traffic splits of the caller's model names: set, move, remove, describe, and the
guard that keeps a version an alias or route points to from being disabled or deleted.

Every change locks the versions it points to (FOR SHARE) in the transaction that writes it, and a
disable or delete locks its version FOR UPDATE before `check_unreferenced`: so a version can
never end up both disabled and pointed to. Each change writes an audit row, commits, then bumps
the cache epoch, so every web process resolves names by the new state on its next request.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.dml import Delete

from shared.aliases.refs import LATEST, is_version_like
from shared.aliases.schemas import AliasOut, NameOut, RouteIn, ShadowIn, TrafficIn, TrafficOut
from shared.aliases.table import ALIAS_PATTERN, AliasEvent, ModelAlias, TrafficRoute
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.models import MLModel
from shared.schemas.models import ModelOut
from web import epoch
from web.auth.guard import current
from web.extensions import db

_ALIAS = re.compile(ALIAS_PATTERN)


def check_alias_name(alias: str) -> None:
    """422 unless `alias` may be set: the pattern, not `latest`, not shaped like `v3`."""
    if not _ALIAS.fullmatch(alias) or alias == LATEST or is_version_like(alias):
        raise ValidationFailed(
            f"Alias {alias!r:.40} is not allowed: [a-z][a-z0-9-]{{0,31}}, not 'latest' "
            "(reserved) and not shaped like a version ('v3')",
            code="invalid_alias",
            details={"alias": alias[:40]},
        )


def describe(name: str) -> NameOut:
    """The name's versions (newest first), aliases and traffic; 404 when it has none."""
    models = versions_or_404(name)
    by_id = {m.id: m.version for m in models}
    aliases = {a.alias: by_id[a.model_id] for a in _aliases(name) if a.model_id in by_id}
    return NameOut(
        name=name,
        versions=with_aliases(models),
        aliases=dict(sorted(aliases.items())),
        traffic=traffic_of(name, by_id),
    )


def set_alias(name: str, alias: str, version: int) -> AliasOut:
    """Point `name@alias` at a ready version; returns the version it pointed to before."""
    check_alias_name(alias)
    model = _ready_version(name, version)
    owner = current().id
    key = (ModelAlias.owner_id == owner, ModelAlias.name == name, ModelAlias.alias == alias)
    previous = None
    while True:
        # The row lock orders concurrent moves of one alias: each reads the version the one
        # before it left (an UPDATE joined to its own old row would re-check only the target
        # row after waiting, and could answer a stale previous version).
        old = db.session.scalar(select(ModelAlias.model_id).where(*key).with_for_update())
        if old is not None:
            db.session.execute(
                update(ModelAlias)
                .where(*key)
                .values(model_id=model.id, updated_by=owner, updated_at=func.now())
            )
            previous = db.session.scalar(select(MLModel.version).where(MLModel.id == old))
            break
        created = db.session.scalar(
            pg_insert(ModelAlias)
            .values(owner_id=owner, name=name, alias=alias, model_id=model.id, updated_by=owner)
            .on_conflict_do_nothing()
            .returning(ModelAlias.alias)
        )
        if created is not None:
            break  # else a concurrent request created it first: move it as a moved alias
    _audit(name, "alias", alias=alias, from_version=previous, to_version=version)
    _commit()
    return AliasOut(alias=alias, version=version, previous_version=previous)


def delete_alias(name: str, alias: str) -> None:
    old = db.session.scalar(
        delete(ModelAlias)
        .where(
            ModelAlias.owner_id == current().id, ModelAlias.name == name, ModelAlias.alias == alias
        )
        .returning(ModelAlias.model_id)
    )
    if old is None:
        db.session.rollback()
        raise NotFound(f"Alias {name[:100]}@{alias[:40]} not found")
    previous = db.session.scalar(select(MLModel.version).where(MLModel.id == old))
    _audit(name, "alias", alias=alias, from_version=previous)
    _commit()


def set_traffic(name: str, body: TrafficIn) -> TrafficOut:
    """Replace the name's traffic split (and shadow) with `body`, all versions ready."""
    owner = current().id
    rows = [(_ready_version(name, r.version).id, "route", r.weight) for r in body.routes]
    if body.shadow is not None:
        rows.append((_ready_version(name, body.shadow.version).id, "shadow", body.shadow.percent))
    db.session.execute(_traffic_delete(name))
    db.session.execute(
        insert(TrafficRoute),
        [
            {"owner_id": owner, "name": name, "model_id": mid, "role": role, "weight": weight}
            for mid, role, weight in rows
        ],
    )
    out = TrafficOut(routes=sorted(body.routes, key=lambda r: r.version), shadow=body.shadow)
    _audit(name, "traffic", traffic=out.model_dump())
    _commit()
    return out


def delete_traffic(name: str) -> None:
    if not db.session.execute(_traffic_delete(name).returning(TrafficRoute.role)).all():
        db.session.rollback()
        raise NotFound(f"{name[:100]!r} has no traffic split")
    _audit(name, "traffic")
    _commit()


def traffic_of(name: str, by_id: dict[uuid.UUID, int]) -> TrafficOut | None:
    rows = db.session.execute(
        select(TrafficRoute.model_id, TrafficRoute.role, TrafficRoute.weight).where(
            TrafficRoute.owner_id == current().id, TrafficRoute.name == name
        )
    ).all()
    routes = [
        RouteIn(version=by_id[r.model_id], weight=r.weight) for r in rows if r.role == "route"
    ]
    if not routes:
        return None
    shadows = [
        ShadowIn(version=by_id[r.model_id], percent=r.weight) for r in rows if r.role == "shadow"
    ]
    return TrafficOut(
        routes=sorted(routes, key=lambda r: r.version), shadow=shadows[0] if shadows else None
    )


def history(name: str, limit: int = 100) -> list[AliasEvent]:
    """The name's alias moves and traffic changes, newest first."""
    return list(
        db.session.scalars(
            select(AliasEvent)
            .where(AliasEvent.owner_id == current().id, AliasEvent.name == name)
            .order_by(AliasEvent.at.desc(), AliasEvent.id)
            .limit(limit)
        )
    )


def with_aliases(models: list[MLModel]) -> list[ModelOut]:
    """The model objects, each with the aliases of its name that point to it (one query)."""
    rows = db.session.execute(
        select(ModelAlias.model_id, ModelAlias.alias)
        .where(ModelAlias.model_id.in_([m.id for m in models]))
        .order_by(ModelAlias.alias)
    ).all()
    named: dict[uuid.UUID, list[str]] = {}
    for model_id, alias in rows:
        named.setdefault(model_id, []).append(alias)
    return [
        ModelOut.model_validate(m).model_copy(update={"aliases": named.get(m.id, [])})
        for m in models
    ]


def check_unreferenced(model: MLModel) -> None:
    """409 when an alias or traffic route points to this version (call with its row locked)."""
    aliases = db.session.scalars(
        select(ModelAlias.alias).where(ModelAlias.model_id == model.id).order_by(ModelAlias.alias)
    ).all()
    roles = db.session.scalars(
        select(TrafficRoute.role).where(TrafficRoute.model_id == model.id)
    ).all()
    if aliases or roles:
        db.session.rollback()
        pointers = [f"{model.name}@{a}" for a in aliases] + [f"traffic {r}" for r in roles]
        raise Conflict(
            f"Version {model.version} of {model.name!r} is in use ({', '.join(pointers)}): "
            "move the aliases and traffic away from it first",
            code="version_in_use",
            details={"aliases": list(aliases), "traffic": sorted(set(roles))},
        )


def versions_or_404(name: str) -> list[MLModel]:
    """The caller's versions of `name` (not deleted), newest first; 404 when there are none."""
    models = _versions(name)
    if not models:
        raise _no_name(name)
    return models


def _versions(name: str) -> list[MLModel]:
    return list(
        db.session.scalars(
            select(MLModel)
            .where(
                MLModel.owner_id == current().id,
                MLModel.name == name,
                MLModel.deleted_at.is_(None),
            )
            .order_by(MLModel.version.desc())
        )
    )


def _aliases(name: str) -> list[Any]:
    return db.session.execute(
        select(ModelAlias.alias, ModelAlias.model_id).where(
            ModelAlias.owner_id == current().id, ModelAlias.name == name
        )
    ).all()


def _ready_version(name: str, version: int) -> MLModel:
    """The caller's `name` at `version`, locked against a concurrent disable or delete: 404 if
    there is none, 409 unless it is ready."""
    model = db.session.scalar(
        select(MLModel)
        .where(
            MLModel.owner_id == current().id,
            MLModel.name == name,
            MLModel.version == version,
            MLModel.deleted_at.is_(None),
        )
        .with_for_update(read=True)
    )
    if model is None:
        db.session.rollback()
        raise NotFound(f"Model {name[:100]!r} has no version {version}")
    if model.status != "ready":
        db.session.rollback()
        raise Conflict(
            f"Version {version} of {name!r} is {model.status}: only a ready version can be "
            "pointed to",
            code="model_not_ready",
            details={"version": version, "status": model.status},
        )
    return model


def _traffic_delete(name: str) -> Delete:
    return delete(TrafficRoute).where(
        TrafficRoute.owner_id == current().id, TrafficRoute.name == name
    )


def _audit(name: str, kind: str, **values: Any) -> None:
    db.session.add(
        AliasEvent(owner_id=current().id, name=name, kind=kind, actor_id=current().id, **values)
    )


def _commit() -> None:
    db.session.commit()
    epoch.bump()  # every web process resolves the name anew on its next request


def _no_name(name: str) -> NotFound:
    return NotFound(f"Model {name[:100]!r} not found")
