"""`mlsp-dev`'s own behaviour (the dev tools): what `run` sets up before starting anything, and
`mlsp-dev flask` running the app's commands on the same services."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from mlsp_dev.cli import ports_problem, run_env
from shared.db import session_scope
from shared.models import User

ROOT = Path(__file__).resolve().parents[2]


def _mlsp_dev(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlsp_dev", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.no_db
def test_run_logs_for_people_unless_told_otherwise(tmp_path):
    env = run_env({}, tmp_path)
    assert env["LOG_FORMAT"] == "text" and env["FLOWER_BASIC_AUTH"].startswith("admin:")
    assert run_env({"LOG_FORMAT": "json"}, tmp_path)["LOG_FORMAT"] == "json"


@pytest.mark.no_db
def test_run_says_which_port_is_taken_before_starting_anything(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert ports_problem({"FLOWER_PORT": str(port), "PORT": "0"}) == (
            f"port {port} is already in use; stop what holds it or set FLOWER_PORT"
        )
        done = _mlsp_dev("--data-dir", str(tmp_path), "run", HOST="127.0.0.1", PORT=str(port))
    assert done.returncode == 1
    assert f"port {port} is already in use; stop what holds it or set PORT" in done.stderr
    assert "release" not in done.stderr + done.stdout  # nothing was started


def test_flask_commands_run_on_the_stack_services(tmp_path):
    email = f"admin-{secrets.token_hex(3)}@example.com"
    done = _mlsp_dev(
        "--data-dir", str(tmp_path), "flask", "create-admin", email, "--password", "a-long-secret-1"
    )
    assert done.returncode == 0, done.stderr
    with session_scope() as session:
        assert session.scalar(select(User.is_admin).where(User.email == email)) is True
