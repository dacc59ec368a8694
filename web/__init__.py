"""Flask application factory for the HTTP API (the thin web tier)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import Flask, jsonify, redirect
from flask_cors import CORS
from granian.utils.proxies import wrap_wsgi_with_proxy_headers

from shared.config import Settings, get_settings
from shared.db import engine_options
from shared.logs import configure_logging
from web import requests as request_hooks
from web.auth.tokens import register_jwt_errors
from web.cli import register_commands
from web.errors import register_error_handlers
from web.extensions import db, jwt, migrate, register_services
from web.json import OrjsonProvider
from web.limits import register_limiter
from web.metrics import register_metrics
from web.openapi import spec
from web.ui import register_ui
from web.waits import register_waits


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app from a settings object (the environment's when none is given)."""
    settings = settings or get_settings()
    settings.require_web_secrets()  # only this tier signs anything (workers run without them)
    configure_logging(settings.log_level, settings.log_format)
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config.update(_flask_config(settings))
    register_services(app, settings)
    register_extensions(app, settings)
    register_error_handlers(app)
    request_hooks.register(app)
    register_blueprints(app)
    register_ui(app, settings)  # the web pages at / and /admin (web/ui/)
    register_docs(app)
    register_metrics(app, settings)
    if settings.forwarded_allow_ips:
        # The client's address (request logs, per-IP rate limits) from a trusted proxy's header.
        app.wsgi_app = wrap_wsgi_with_proxy_headers(app.wsgi_app, settings.forwarded_allow_ips)
    return app


def _flask_config(settings: Settings) -> dict:
    return {
        "SECRET_KEY": settings.secret_key,
        "SQLALCHEMY_DATABASE_URI": settings.sqlalchemy_url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(settings),
        "JWT_SECRET_KEY": settings.jwt_secret_key,
        "JWT_ACCESS_TOKEN_EXPIRES": timedelta(seconds=settings.access_token_expires_s),
        "JWT_REFRESH_TOKEN_EXPIRES": timedelta(seconds=settings.refresh_token_expires_s),
        "JWT_TOKEN_LOCATION": ["headers"],
        # The larger of the two limits; each route narrows it (uploads vs JSON bodies).
        "MAX_CONTENT_LENGTH": max(settings.max_upload_bytes, settings.max_body_bytes),
        "JSON_SORT_KEYS": False,
    }


def register_extensions(app: Flask, settings: Settings) -> None:
    db.init_app(app)
    migrate.init_app(app, db, directory=_migrations_dir())
    jwt.init_app(app)
    register_jwt_errors(app)
    register_limiter(app, settings)
    register_waits(app, settings)
    register_commands(app)
    if settings.cors_origins:
        origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
        CORS(app, origins=origins, expose_headers=["Location", "Retry-After", "X-Request-ID"])


def register_blueprints(app: Flask) -> None:
    from web.aliases import routes as alias_routes
    from web.analytics import routes as analytics_routes
    from web.auth import admin, api_keys, routes
    from web.batches import routes as batch_routes
    from web.health import bp as health_bp
    from web.jobs import routes as job_routes
    from web.oip import routes as oip_routes
    from web.registry import routes as registry_routes
    from web.webhooks import routes as webhook_routes

    app.register_blueprint(health_bp, url_prefix="/api/v1/health")
    app.register_blueprint(routes.bp, url_prefix="/api/v1/auth")
    app.register_blueprint(api_keys.bp, url_prefix="/api/v1/api-keys")
    app.register_blueprint(admin.bp, url_prefix="/api/v1/admin")
    app.register_blueprint(registry_routes.bp, url_prefix="/api/v1/models")
    app.register_blueprint(alias_routes.bp, url_prefix="/api/v1/models")
    app.register_blueprint(job_routes.models_bp, url_prefix="/api/v1/models")
    app.register_blueprint(job_routes.jobs_bp, url_prefix="/api/v1/jobs")
    app.register_blueprint(oip_routes.bp, url_prefix="/v2")  # OIP v2: no /api/v1 prefix
    app.register_blueprint(analytics_routes.bp, url_prefix="/api/v1/models")
    app.register_blueprint(batch_routes.models_bp, url_prefix="/api/v1/models")
    app.register_blueprint(batch_routes.bp, url_prefix="/api/v1/batches")
    app.register_blueprint(webhook_routes.bp, url_prefix="/api/v1/webhooks")


def register_docs(app: Flask) -> None:
    """OpenAPI document at /api/v1/openapi.json (docs/api.md) and Swagger UI at /api/v1/docs."""
    spec.register(app)  # also serves /api/v1/apidoc/{openapi.json,swagger/,redoc/}
    app.add_url_rule("/api/v1/openapi.json", "openapi_document", lambda: jsonify(spec.spec))
    app.add_url_rule("/api/v1/docs", "openapi_docs", lambda: redirect("/api/v1/apidoc/swagger/"))


def _migrations_dir() -> str:
    return str(Path(__file__).resolve().parent.parent / "migrations")
