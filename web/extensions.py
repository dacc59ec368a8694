"""Flask extensions, created unbound here and attached in `web.create_app`."""

from __future__ import annotations

import redis
from flask import current_app
from flask_jwt_extended import JWTManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from spectree import SecurityScheme, SpecTree
from spectree.models import SecureType, SecuritySchemeData

from shared.models import Base
from shared.redis_client import client_for
from shared.schemas.common import ErrorResponse
from web.errors import raise_validation_error

# Flask-SQLAlchemy drives the same plain-SQLAlchemy metadata the workers use.
# Objects stay readable after commit: a handler that has just written a row answers from it
# instead of reloading every attribute with another SELECT.
db = SQLAlchemy(metadata=Base.metadata, session_options={"expire_on_commit": False})
migrate = Migrate()
jwt = JWTManager()

spec = SpecTree(
    "flask",
    title="ML Model Serving Platform",
    version="1",
    path="api/v1/apidoc",
    mode="strict",
    validation_error_status=422,
    validation_error_model=ErrorResponse,
    before=raise_validation_error,
    annotations=False,
    security_schemes=[
        SecurityScheme(
            name="bearer", data=SecuritySchemeData(type=SecureType.HTTP, scheme="bearer")
        ),
        SecurityScheme(
            name="apiKey",
            data=SecuritySchemeData(type=SecureType.API_KEY, name="X-API-Key", field_in="header"),
        ),
    ],
)


def app_redis() -> redis.Redis:
    """The Redis of the current app's settings (not the process environment's)."""
    return client_for(app_redis_url())


def app_redis_url() -> str:
    return current_app.extensions["mlsp_settings"].redis_url
