"""Which version serves a prediction addressed by id or by name, and how it was chosen.

`name@v3` and ids are explicit; `name@alias` follows the alias (`latest`: the newest ready
version); a bare `name` follows its traffic split when one is set (and may be copied to the
shadow), else the `production` alias, else the newest ready version.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from flask import request

from shared.aliases import routing
from shared.aliases.refs import LATEST, NameRef, not_found, parse, parse_name
from web.aliases.cache import NameState, name_state
from web.auth.guard import current
from web.registry.cache import ServingModel, owned_model

PRODUCTION = "production"
ROUTING_HEADER = "X-Routing-Key"


@dataclass(frozen=True)
class Resolved:
    """The version that serves, how it was chosen, and the shadow version to copy it to."""

    model: ServingModel
    route: str  # explicit | alias | traffic
    shadow: ServingModel | None = None


def resolve(ref: str, *, with_shadow: bool = True, ids: bool = True) -> Resolved:
    """The caller's version for `ref` (404 for anything not theirs); with `ids` False, `ref`
    is a name reference even when it reads as a UUID (OIP addresses models by name)."""
    parsed = parse(ref) if ids else parse_name(ref)
    if isinstance(parsed, uuid.UUID):
        return Resolved(owned_model(parsed), "explicit")
    state = name_state(current().id, parsed.name)
    if not state.versions:
        raise not_found(ref)
    if parsed.version is not None:
        return Resolved(_version(state, parsed, parsed.version), "explicit")
    if parsed.alias is not None:
        return Resolved(_version(state, parsed, _alias(state, parsed, parsed.alias)), "alias")
    if state.routes:
        return _by_traffic(state, parsed, with_shadow)
    default = state.aliases.get(PRODUCTION, state.newest_ready)
    if default is None:  # no version is ready: say why, as for the newest one by id
        default = max(state.versions)
    return Resolved(_version(state, parsed, default), "alias")


def _alias(state: NameState, ref: NameRef, alias: str) -> int:
    version = state.newest_ready if alias == LATEST else state.aliases.get(alias)
    if version is None:
        raise not_found(ref)
    return version


def _version(state: NameState, ref: NameRef, version: int) -> ServingModel:
    model = state.versions.get(version)
    if model is None:
        raise not_found(ref)
    # Only ready versions are trusted from the cache: any other status is read again (a
    # validation may have ended since), as the id route reads it.
    return model if model.status == "ready" else owned_model(model.id)


def _by_traffic(state: NameState, ref: NameRef, with_shadow: bool) -> Resolved:
    # A retry with the same Idempotency-Key must land on the same version (its request hash
    # names the version), so without a routing key the idempotency key is the sticky one.
    key = request.headers.get(ROUTING_HEADER) or request.headers.get("Idempotency-Key")
    bucket = routing.bucket(ref.name, key)
    model = _version(state, ref, routing.pick(state.routes, bucket))
    shadow = None
    if with_shadow and state.shadow is not None and routing.copy_to_shadow(state.shadow[1]):
        shadow = state.versions.get(state.shadow[0])
    return Resolved(model, "traffic", shadow)
