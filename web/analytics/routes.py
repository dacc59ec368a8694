"""`GET /api/v1/models/{id}/analytics?days=`: the owner's view of how a model is used."""

from __future__ import annotations

import uuid

from flask import Blueprint, request
from spectree import Response

from shared.models import MLModel
from shared.schemas.analytics import Analytics, AnalyticsQuery
from shared.schemas.common import ErrorResponse
from web import extensions
from web.analytics.queries import model_analytics
from web.auth.guard import login_required
from web.extensions import db
from web.openapi import AUTH, spec
from web.scoping import get_owned

bp = Blueprint("analytics", __name__)

_ERRORS = {"HTTP_401": ErrorResponse, "HTTP_403": ErrorResponse, "HTTP_404": ErrorResponse}


@bp.get("/<uuid:model_id>/analytics")
@login_required()
@spec.validate(
    query=AnalyticsQuery,
    resp=Response(HTTP_200=Analytics, **_ERRORS),
    tags=["models"],
    security=AUTH,
)
def analytics(model_id: uuid.UUID):
    """Job volumes by status, success rate, latency percentiles, daily counts, cache hit rate,
    rows predicted and the last failures (never their inputs) over the last `days` days."""
    get_owned(MLModel, model_id, "Model")
    timeout_ms = extensions.settings().analytics_timeout_ms
    return model_analytics(db.session, model_id, request.context.query.days, timeout_ms=timeout_ms)
