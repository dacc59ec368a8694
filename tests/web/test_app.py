"""What the app factory (web/__init__.py) checks of its settings: production refuses the
development secret, and JWT_SECRET_KEY defaults to SECRET_KEY."""

from __future__ import annotations

import pytest

from shared.config import Settings


def test_production_refuses_default_secret():
    """Refused where it is used: the web tier (workers run without it; tests/security)."""
    with pytest.raises(ValueError, match="SECRET_KEY"):
        Settings(MLSP_ENV="production").require_web_secrets()


def test_production_accepts_real_secret():
    settings = Settings(MLSP_ENV="production", SECRET_KEY="x" * 40)
    assert settings.jwt_secret_key == "x" * 40
