"""Test harness: a fresh PostgreSQL database per run (schema by migration), a dedicated Redis
database, and real Celery worker processes for end-to-end tests. No eager mode, no stand-ins.

The servers come from DATABASE_URL / REDIS_URL (what `.ci/run` or `mlsp-dev test` provide);
everything this run creates lives in its own database, Redis db number and queue name.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from hypothesis import settings
from sqlalchemy.engine import make_url

_RUN = secrets.token_hex(4)
_SERVER_DB_URL = make_url(
    os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
).set(drivername="postgresql+psycopg2")
TEST_DB_NAME = f"mlsp_test_{_RUN}"
TEST_QUEUE = f"mlsp_test_{_RUN}"


def _redis_test_url() -> str:
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    db = os.environ.get("TEST_REDIS_DB", "15")
    return base.rsplit("/", 1)[0] + "/" + db if base.count("/") >= 3 else f"{base}/{db}"


# Set before any project module reads its settings (they are parsed once, on first use).
os.environ.update(
    {
        "DATABASE_URL": _SERVER_DB_URL.set(database=TEST_DB_NAME).render_as_string(
            hide_password=False
        ),
        "REDIS_URL": _redis_test_url(),
        "MLSP_ENV": "test",
        "REDIS_KEY_PREFIX": f"mlsp-test-{_RUN}:",
        "DEFAULT_QUEUE": TEST_QUEUE,
        "MODEL_STORE_DIR": tempfile.mkdtemp(prefix="mlsp-store-"),
        "RATE_LIMIT_ENABLED": os.environ.get("RATE_LIMIT_ENABLED", "false"),
        "VALIDATION_WAIT_S": "10",
        # Webhook receivers in tests listen on the loopback, over http.
        "WEBHOOK_ALLOW_HTTP": "true",
        "WEBHOOK_ALLOW_PRIVATE": "true",
    }
)

# CI replays the same property-test examples on every run, so a red build points at a change.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.api",
    "tests.fixtures.models",
    "tests.fixtures.results",
]


def pytest_configure(config) -> None:
    from tests.fixtures.database import create_test_database

    create_test_database(_SERVER_DB_URL, TEST_DB_NAME)


def pytest_unconfigure(config) -> None:
    from tests.fixtures.database import drop_test_database

    drop_test_database(_SERVER_DB_URL, TEST_DB_NAME)


def store_dir() -> Path:
    return Path(os.environ["MODEL_STORE_DIR"])
