"""The web process: granian serving the WSGI app (`python -m web.serve`; Procfile, Dockerfile).

Why granian rather than gunicorn: its HTTP handling is Rust, off the GIL, and the measured
difference on these 2-core machines is the web tier's main cost (bench/README.md, step 14: 0.97 vs
1.16 ms of CPU per sync prediction, +20-35% requests/s at 16 connections). WSGI requests run on
a pool of blocking threads per worker process, so a request waiting for its prediction holds a
thread, not a process, as gunicorn's gthread workers did.

This process is the master: it chooses the Prometheus multiprocess directory before any worker
process exists (workers are forked from it and import prometheus_client only then), logs as
JSON, and removes the directory when it stops. Address, port and pool sizes come from the
settings (HOST, PORT, WEB_CONCURRENCY, WEB_THREADS).
"""

from __future__ import annotations

import logging
from pathlib import Path

from granian.constants import Interfaces
from granian.log import LogLevels
from granian.server import Server

from shared import metrics_dir
from shared.config import Settings, get_settings
from shared.logs import configure_logging
from shared.ports import require_port

log = logging.getLogger("mlsp.web")

# Longer than the longest sync wait (60 s, docs/api.md, "Sync predict") would keep a deploy
# waiting on one client; compose's stop_grace_period is 35 s.
GRACEFUL_STOP_S = 30


def log_config(settings: Settings) -> dict:
    """granian's own lines through our formatter (JSON by default); no access log: the app logs
    one line per request itself (web/requests.py)."""
    return {
        "formatters": {"mlsp": {"()": "shared.logs.make_formatter", "fmt": settings.log_format}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "mlsp",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {"_granian": {"handlers": ["stderr"], "propagate": False}},
    }


def build_server(settings: Settings) -> Server:
    return Server(
        "web:create_app",
        factory=True,
        interface=Interfaces.WSGI,
        address=settings.host,
        port=settings.port,
        workers=settings.web_concurrency,
        blocking_threads=settings.web_threads,
        log_level=LogLevels(settings.log_level.lower()),
        log_dictconfig=log_config(settings),
        log_access=False,
        respawn_failed_workers=True,
        workers_kill_timeout=GRACEFUL_STOP_S,
    )


def main() -> None:
    settings = get_settings()
    require_port("web", settings.host, settings.port, "PORT")
    configure_logging(settings.log_level, settings.log_format)
    path = metrics_dir.prepare(Path(settings.metrics_dir), "web")
    log.info("metrics directory %s", path)
    server = build_server(settings)
    server.on_shutdown(lambda: metrics_dir.remove(path))
    server.serve()


if __name__ == "__main__":
    main()
