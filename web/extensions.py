"""Flask extensions and the app's own services, created unbound here and attached in
`web.create_app`; request code reaches the services through the typed accessors below, so every
read follows the app's settings, never the process environment's."""

from __future__ import annotations

from celery import Celery
from flask import Flask, current_app
from flask_jwt_extended import JWTManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from redis import Redis

from shared.celery_config import create_producer
from shared.config import Settings
from shared.models import Base
from shared.redis_client import client_for
from shared.store import ArtifactStore, store_for

# Flask-SQLAlchemy drives the same plain-SQLAlchemy metadata the workers use.
# Objects stay readable after commit: a handler that has just written a row answers from it
# instead of reloading every attribute with another SELECT.
db = SQLAlchemy(metadata=Base.metadata, session_options={"expire_on_commit": False})
migrate = Migrate()
jwt = JWTManager()

_SETTINGS = "mlsp_settings"
_PRODUCER = "celery_producer"


def register_services(app: Flask, settings: Settings) -> None:
    """The app's settings and the Celery producer built from them (this tier sends tasks, it
    never runs one)."""
    app.extensions[_SETTINGS] = settings
    app.extensions[_PRODUCER] = create_producer(settings)


def settings() -> Settings:
    """The current app's settings."""
    return current_app.extensions[_SETTINGS]


def producer() -> Celery:
    """The current app's Celery producer (its broker is the app's REDIS_URL)."""
    return current_app.extensions[_PRODUCER]


def redis(blocking: bool = False) -> Redis:
    """A pooled client of the current app's Redis; `blocking` for waits (BLPOP)."""
    url = settings().redis_url
    # Called as shared/signals.py calls it: client_for caches per argument list, so the same
    # call shares one pool.
    return client_for(url, blocking=True) if blocking else client_for(url)


def store() -> ArtifactStore:
    """The current app's artifact store, ARTIFACT_STORE_URL or MODEL_STORE_DIR (built on first
    use, not at app creation: a command that never touches artifacts creates no directory)."""
    return store_for(settings())
