"""`/api/v1/models/by-name/{name}`: a model name's versions, aliases, traffic split, audit
trail and per-version analytics (docs/aliases.md)."""

from __future__ import annotations

import re

from flask import Blueprint, request
from spectree import Response

from shared.aliases.schemas import (
    AliasBody,
    AliasEventList,
    AliasEventOut,
    AliasOut,
    NameAnalytics,
    NameOut,
    TrafficIn,
    TrafficOut,
)
from shared.errors import NotFound
from shared.schemas.analytics import AnalyticsQuery
from shared.schemas.models import NAME_PATTERN
from web import extensions
from web.aliases import service
from web.aliases.analytics import name_analytics
from web.auth.guard import login_required
from web.extensions import db
from web.openapi import AUTH, PROTECTED_ERRORS, errors, spec

bp = Blueprint("aliases", __name__)

_NAME = re.compile(NAME_PATTERN)
_OWN = errors(*PROTECTED_ERRORS, 404)
_CHANGE = errors(*PROTECTED_ERRORS, 404, 409, 422)


def _checked(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise NotFound(f"Model {name!r:.120} not found")
    return name


@bp.get("/by-name/<name>")
@login_required()
@spec.validate(resp=Response(HTTP_200=NameOut, **_OWN), tags=["aliases"], security=AUTH)
def get_name(name: str):
    """A model name: its versions (newest first), aliases (alias -> version) and traffic."""
    return service.describe(_checked(name))


@bp.put("/by-name/<name>/aliases/<alias>")
@login_required()
@spec.validate(
    json=AliasBody, resp=Response(HTTP_200=AliasOut, **_CHANGE), tags=["aliases"], security=AUTH
)
def put_alias(name: str, alias: str):
    """Point `name@alias` at a ready version (atomic); answers the version it pointed to before,
    so a rollback is one more call. `latest` is reserved (the newest ready version)."""
    body: AliasBody = request.context.json
    return service.set_alias(_checked(name), alias, body.version)


@bp.delete("/by-name/<name>/aliases/<alias>")
@login_required()
@spec.validate(resp=Response("HTTP_204", **_OWN), tags=["aliases"], security=AUTH)
def delete_alias(name: str, alias: str):
    """Remove an alias; predictions by `name@alias` are 404 from the next request on."""
    service.delete_alias(_checked(name), alias)
    return "", 204


@bp.put("/by-name/<name>/traffic")
@login_required()
@spec.validate(
    json=TrafficIn,
    resp=Response(HTTP_200=TrafficOut, **_CHANGE),
    tags=["aliases"],
    security=AUTH,
)
def put_traffic(name: str):
    """Split the bare name's predictions over ready versions by integer weights summing to 100
    (sticky per `X-Routing-Key` header), optionally copying a percentage to a shadow version."""
    return service.set_traffic(_checked(name), request.context.json)


@bp.delete("/by-name/<name>/traffic")
@login_required()
@spec.validate(resp=Response("HTTP_204", **_OWN), tags=["aliases"], security=AUTH)
def delete_traffic(name: str):
    """Remove the split: the bare name follows `production`, else the newest ready version."""
    service.delete_traffic(_checked(name))
    return "", 204


@bp.get("/by-name/<name>/history")
@login_required()
@spec.validate(resp=Response(HTTP_200=AliasEventList, **_OWN), tags=["aliases"], security=AUTH)
def get_history(name: str):
    """Who moved which alias or changed the traffic, when, from and to what (newest first)."""
    service.versions_or_404(_checked(name))
    items = [AliasEventOut.model_validate(e) for e in service.history(name)]
    return AliasEventList(items=items)


@bp.get("/by-name/<name>/analytics")
@login_required()
@spec.validate(
    query=AnalyticsQuery,
    resp=Response(HTTP_200=NameAnalytics, **_OWN),
    tags=["aliases"],
    security=AUTH,
)
def get_analytics(name: str):
    """Each version's analytics object, and for shadow versions the share of rows whose
    predictions agree with the jobs they shadowed (mean absolute difference for regressors)."""
    versions = service.versions_or_404(_checked(name))
    timeout_ms = extensions.settings().analytics_timeout_ms
    days = request.context.query.days
    return name_analytics(db.session, name, versions, days, timeout_ms)
