"""A taken port stops the web and Flower processes with one line naming the variable that moves
it (shared/ports.py), not a server's backtrace."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from shared.ports import port_problem

pytestmark = pytest.mark.no_db


@contextmanager
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_free_port_has_no_problem():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert port_problem("127.0.0.1", port, "PORT") is None


def test_a_taken_port_names_the_variable():
    with taken_port() as port:
        problem = port_problem("127.0.0.1", port, "PORT")
    assert problem == f"port {port} is already in use; stop what holds it or set PORT"


def test_an_unknown_host_is_named():
    assert "check HOST" in port_problem("no-such-host.invalid", 8000, "PORT")


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("process", ["web", "flower"])
def test_processes_say_which_port_in_one_line(process):
    with taken_port() as port:
        if process == "web":
            done = _run(["-m", "web.serve"], HOST="127.0.0.1", PORT=str(port))
        else:
            done = _run(["-m", "workers.flower", f"--port={port}", "--address=127.0.0.1"])
    variable = "PORT" if process == "web" else "FLOWER_PORT"
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"{process}: port {port} is already in use; stop what holds it or set {variable}"
    ]
