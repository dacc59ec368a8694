"""The embedded PostgreSQL (the `pgserver` package): a private server on a unix socket under the
data directory, stopped again when the last mlsp-dev using it lets go."""

from __future__ import annotations

import json
import os
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from mlsp_dev.processes import pid_alive, process_name, signal_router

if TYPE_CHECKING:
    from pgserver import PostgresServer

DATABASE_NAME = "mlsp"


def _import_pgserver() -> None:
    # pgserver picks its lock directory at import; without XDG_RUNTIME_DIR (root, containers,
    # CI) platformdirs warns about falling back to /tmp, which is fine and only noise here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver  # noqa: F401


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop stale entries from pgserver's handle list and a stale postmaster.pid.

    pgserver stops the server only when the last *listed* process lets go; a run that was
    SIGKILLed stays listed forever and the server would then never be stopped again. A
    postmaster.pid whose pid now belongs to another program would make pgserver think the
    server is up.
    """
    handles = pgdata / ".handle_pids.json"
    if handles.exists():
        pids = [pid for pid in json.loads(handles.read_text() or "[]") if pid_alive(pid)]
        handles.write_text(json.dumps(pids))
    pidfile = pgdata / "postmaster.pid"
    if pidfile.exists():
        first_line = pidfile.read_text().split("\n", 1)[0].strip()
        if not first_line.isdigit() or process_name(int(first_line)) != "postgres":
            pidfile.unlink()


def _ensure_database(server: PostgresServer, name: str) -> None:
    import psycopg2
    from psycopg2 import errors, sql

    info = server.get_postmaster_info()
    conn = psycopg2.connect(
        host=str(info.socket_dir), port=info.port, user="postgres", dbname="postgres"
    )
    conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except errors.DuplicateDatabase:
        pass  # another mlsp-dev on the same data dir created it meanwhile
    finally:
        conn.close()


def _start_pgserver(pgdata: Path) -> PostgresServer:
    _import_pgserver()
    import pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata.exists():
        _forget_dead_handles(pgdata)
    # As root, pgserver runs postgres as a system user `pgserver` (created if missing), chowns
    # pgdata to it and opens g+rx/o+rx on every parent directory so that user can reach it.
    # It reuses a server already running on this pgdata (e.g. left by a crashed run).
    return pgserver.get_server(pgdata, cleanup_mode="stop")


def _stop_pgdata_server(pgdata: Path) -> None:
    """Best effort stop when start-up failed half-way (no pgserver handle to clean up with)."""
    from pgserver._commands import POSTGRES_BIN_PATH

    if not (pgdata / "postmaster.pid").exists():
        return
    handles = pgdata / ".handle_pids.json"
    users = json.loads(handles.read_text() or "[]") if handles.exists() else []
    if any(pid != os.getpid() and pid_alive(pid) for pid in users):
        return  # another live mlsp-dev uses this server
    user = "pgserver" if os.geteuid() == 0 else None
    subprocess.run(  # noqa: S603 - pgserver's own pg_ctl binary
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
        user=user,
        check=False,
        capture_output=True,
    )


@contextmanager
def embedded_postgres(pgdata: Path) -> Iterator[str]:
    """A private PostgreSQL on a unix socket (no TCP port to clash with); yields DATABASE_URL."""
    pgdata = pgdata.resolve()
    try:
        server = _start_pgserver(pgdata)
    except BaseException:
        _stop_pgdata_server(pgdata)
        raise
    try:
        _ensure_database(server, DATABASE_NAME)
        socket_dir = server.get_postmaster_info().socket_dir
        # psycopg2/SQLAlchemy form for a socket: empty host, directory in `?host=`.
        # (server.get_uri() gives `postgres:@/postgres?host=...`, i.e. another database.)
        yield f"postgresql://postgres@/{DATABASE_NAME}?host={quote(str(socket_dir), safe='/')}"
    finally:
        with signal_router.shielded():
            # Stops the server (pg_ctl -m fast) unless another live mlsp-dev still uses it.
            server.cleanup()
