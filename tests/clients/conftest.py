"""Client tests speak real HTTP: the session app served by werkzeug in a thread, on a free port,
with the session's real worker behind it."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from mlsp.cli import cli
from tests.clients.typed import fit_typed
from tests.fixtures.api import Account, create_api_key
from tests.fixtures.live import serve
from tests.fixtures.models import dump, upload


@pytest.fixture(scope="session")
def live_url(app: Flask, worker) -> Iterator[str]:
    """The session app over HTTP, with a worker consuming its queue."""
    with serve(app) as url:
        yield url


CLI_PASSWORD = "cli-password-123"


@pytest.fixture
def api_key(client, user: Account) -> str:
    """A fresh API key of the `user` fixture's account."""
    return create_api_key(client, user)["key"]


@pytest.fixture(scope="module")
def pipeline():
    return fit_typed()


@pytest.fixture
def typed(client, user, pipeline, tmp_path) -> dict:
    """The pipeline uploaded as "stays" by the `user` fixture's account, ready."""
    resp = upload(client, user, dump(pipeline, tmp_path / "stays.joblib"), name="stays")
    assert resp.status_code in (201, 202), resp.json
    meta = resp.json
    deadline = time.monotonic() + 120  # a loaded machine can validate past the upload's wait
    while meta["status"] == "validating" and time.monotonic() < deadline:
        time.sleep(0.5)
        meta = client.get(f"/api/v1/models/{meta['id']}", headers=user.headers).json
    assert meta["status"] == "ready", meta
    dtypes = {c["name"]: c["dtype"] for c in meta["input_schema"]["columns"]}
    assert dtypes == {
        "age": "number",
        "city": "string",
        "member": "boolean",
        "rooms": "integer",
        "plan": "string",
    }
    return meta


@pytest.fixture
def mlsp(tmp_path, live_url):
    """Run `mlsp ...` with a private config file and no credentials from the environment."""
    runner = CliRunner()
    env = {
        "MLSP_CONFIG": str(tmp_path / "cfg" / "config.json"),
        "MLSP_URL": live_url,
        "MLSP_API_KEY": None,
        "MLSP_PASSWORD": None,
    }

    def run(*args: str, ok: bool = True, stdin: str | None = None):
        result = runner.invoke(cli, list(args), env=env, input=stdin, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    run.config = Path(env["MLSP_CONFIG"])  # type: ignore[attr-defined]
    return run


@pytest.fixture
def logged_in(mlsp):
    """`mlsp` logged in as a fresh account (its `email` and `password` on the fixture)."""
    email = f"cli-{secrets.token_hex(3)}@example.com"
    mlsp("register", "--email", email, "--password", CLI_PASSWORD)
    mlsp("login", "--email", email, "--password", CLI_PASSWORD)
    mlsp.email, mlsp.password = email, CLI_PASSWORD
    return mlsp
