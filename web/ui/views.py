"""The pages' routes, gathered: importing this module attaches every view to its blueprint."""

from __future__ import annotations

from web.ui import (
    views_admin,
    views_aliases,
    views_auth,
    views_batches,
    views_jobs,
    views_keys,
    views_models,
    views_webhooks,
)
from web.ui.blueprint import admin_bp, bp

__all__ = [
    "admin_bp",
    "bp",
    "views_admin",
    "views_aliases",
    "views_auth",
    "views_batches",
    "views_jobs",
    "views_keys",
    "views_models",
    "views_webhooks",
]
