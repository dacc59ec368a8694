"""Flower's entry point (Procfile, compose): refuses to start without basic auth in production,
then becomes `celery flower` with the arguments given (`python -m workers.flower --port=5555`).

Flower shows every task's arguments and can revoke tasks and shut workers down: unauthenticated,
it is an open control panel. Flower reads FLOWER_BASIC_AUTH itself; this only checks it is there.
"""

from __future__ import annotations

import os
import sys

from shared.config import get_settings
from shared.ports import require_port

MIN_PASSWORD = 8


def auth_problem(env: str, basic_auth: str) -> str | None:
    """Why Flower must not start with this FLOWER_BASIC_AUTH, or None. Outside production any
    value goes (`mlsp-dev run` generates one)."""
    if env != "production":
        return None
    if not basic_auth.strip():
        return "FLOWER_BASIC_AUTH (user:password) must be set when MLSP_ENV=production"
    for pair in basic_auth.split(","):
        user, _, password = pair.partition(":")
        if not user or len(password) < MIN_PASSWORD:
            return f"FLOWER_BASIC_AUTH: each entry must be user:password ({MIN_PASSWORD}+ chars)"
    return None


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    problem = auth_problem(settings.env, settings.flower_basic_auth)
    if problem:
        print(f"flower: refusing to start: {problem}", file=sys.stderr)
        raise SystemExit(2)
    args = sys.argv[1:] if argv is None else argv
    require_port(
        "flower",
        _option(args, "address", "0.0.0.0"),
        int(_option(args, "port", "5555")),
        "FLOWER_PORT",
    )
    celery = [sys.executable, "-m", "celery", "-A", "workers.celery_app:app", "flower", *args]
    os.execv(sys.executable, celery)  # noqa: S606 - our own interpreter and arguments


def _option(args: list[str], name: str, default: str) -> str:
    """A `--name=value` (or `--name value`) argument of Flower's command line; Flower's own
    default otherwise."""
    for i, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(args):
            return args[i + 1]
    return default


if __name__ == "__main__":
    main()
