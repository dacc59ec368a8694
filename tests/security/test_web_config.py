"""Issue 18, finding 12 (configuration half): secrets only where they are used, refused when weak
in production; Flower never open; the worker's metrics exporter on the loopback."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from honcho.environ import parse_procfile

from mlsp_dev.environment import flower_credentials
from shared.config import Settings
from web import create_app
from workers.flower import auth_problem

pytestmark = pytest.mark.no_db
ROOT = Path(__file__).resolve().parents[2]
STRONG = "s" * 32
UNSIGNED = ("worker", "beat", "flower")  # process types that never sign anything


def test_production_web_refuses_a_short_secret():
    """Production refuses secrets under 32 characters (a 3-character one was taken)."""
    for weak in ({"SECRET_KEY": "abc"}, {"SECRET_KEY": STRONG, "JWT_SECRET_KEY": "x" * 31}):
        with pytest.raises(ValueError, match="32 characters"):
            create_app(Settings(MLSP_ENV="production", **weak))
    Settings(MLSP_ENV="production", SECRET_KEY=STRONG).require_web_secrets()


def test_worker_settings_need_no_secret_in_production():
    """The worker's process parses its settings without SECRET_KEY/JWT_SECRET_KEY."""
    env = {k: v for k, v in os.environ.items() if "SECRET" not in k}
    env["MLSP_ENV"] = "production"
    done = subprocess.run(
        [sys.executable, "-c", "import workers.celery_app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def _shim(folder: Path, name: str) -> None:
    """A stand-in for `celery`/`python` that records the environment it was started with."""
    script = folder / name
    script.write_text(f'#!/bin/sh\nenv > "$SHIM_OUT/{name}.$HONCHO_PROCESS_NAME"\n')
    script.chmod(0o755)


def test_procfile_starts_worker_beat_flower_without_secrets(tmp_path):
    """Each Procfile line as honcho runs it (sh -c), with the program swapped for a recorder."""
    commands = dict(parse_procfile((ROOT / "Procfile").read_text()).processes)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("celery", "python"):
        _shim(bin_dir, name)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "SHIM_OUT": str(tmp_path),
        "SECRET_KEY": STRONG,
        "JWT_SECRET_KEY": STRONG,
        "BEAT_SCHEDULE_FILE": str(tmp_path / "beat" / "schedule"),
        "FLOWER_DB": str(tmp_path / "flower" / "db"),
    }
    for process in UNSIGNED:
        run_env = {**env, "HONCHO_PROCESS_NAME": process}
        done = subprocess.run(["/bin/sh", "-c", commands[process]], env=run_env, timeout=10)
        assert done.returncode == 0
        recorded = next(tmp_path.glob(f"*.{process}")).read_text()
        assert "SECRET_KEY" not in recorded, process
        assert f"SHIM_OUT={tmp_path}" in recorded  # the rest of the environment passes through
    assert "env -u" not in commands["web"]


def test_compose_gives_secrets_to_web_only():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert {"SECRET_KEY", "JWT_SECRET_KEY"} <= set(services["web"]["environment"])
    for name in UNSIGNED:
        assert not {"SECRET_KEY", "JWT_SECRET_KEY"} & set(services[name]["environment"]), name
    assert "change-me" not in services["flower"]["environment"]["FLOWER_BASIC_AUTH"]
    assert services["worker"]["environment"]["WORKER_METRICS_HOST"] == "0.0.0.0"


def test_flower_refuses_to_start_open_in_production():
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_BASIC_AUTH"}
    env["MLSP_ENV"] = "production"
    done = subprocess.run(
        [sys.executable, "-m", "workers.flower", "--version"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "FLOWER_BASIC_AUTH" in done.stderr
    assert auth_problem("production", "ops:short") is not None
    assert auth_problem("production", "ops:long-enough-pass") is None
    assert auth_problem("development", "") is None


def test_dev_run_generates_private_flower_credentials(tmp_path):
    first = flower_credentials(tmp_path)
    user, _, password = first.partition(":")
    assert user == "admin" and len(password) >= 20
    assert stat.S_IMODE((tmp_path / "flower-auth").stat().st_mode) == 0o600
    assert flower_credentials(tmp_path) == first  # kept across runs


def test_worker_metrics_exporter_binds_loopback(monkeypatch):
    from tests.fixtures.services import free_port
    from workers import metrics

    server = metrics.start_exporter(free_port())
    try:
        assert server is not None
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()
        server.server_close()
