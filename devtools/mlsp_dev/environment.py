"""The environment mlsp-dev gives its children: the shell's, `.env`, local defaults, the
development Flower login, and the URLs of whichever embedded services it had to start."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from honcho.environ import parse as parse_dotenv

from mlsp_dev.postgres import embedded_postgres
from mlsp_dev.processes import say, signal_router
from mlsp_dev.redis_server import embedded_redis

FLOWER_AUTH_FILE = "flower-auth"  # under the data directory: user:password, mode 0600


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
        with signal_router.shielded():
            if not env.get("DATABASE_URL"):
                say("starting embedded PostgreSQL ...")
                env["DATABASE_URL"] = stack.enter_context(embedded_postgres(data_dir / "pg"))
            if not env.get("REDIS_URL") and signal_router.received is None:
                say("starting embedded Redis ...")
                env["REDIS_URL"] = stack.enter_context(embedded_redis(data_dir / "redis"))
        signal_router.raise_if_received()  # a Ctrl-C during start-up: stop what was started
        yield env
