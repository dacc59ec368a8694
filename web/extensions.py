"""Flask extensions, created unbound here and attached in `web.create_app`."""

from __future__ import annotations

from flask_jwt_extended import JWTManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from spectree import SecurityScheme, SpecTree
from spectree.models import SecureType, SecuritySchemeData

from shared.models import Base
from shared.schemas.common import ErrorResponse
from web.errors import raise_validation_error

# Flask-SQLAlchemy drives the same plain-SQLAlchemy metadata the workers use.
db = SQLAlchemy(metadata=Base.metadata)
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
