"""gunicorn hooks for the web process (`gunicorn -c web/gunicorn_conf.py ...`, Procfile and
Dockerfile): the Prometheus multiprocess directory and gunicorn's own log lines as JSON.

gunicorn loads this file by path in the master, before it forks workers and before any worker
imports the app, which is exactly when PROMETHEUS_MULTIPROC_DIR must be chosen. Bind address,
worker counts and timeouts stay on the command line.
"""

from __future__ import annotations

from pathlib import Path

from shared import metrics_dir
from shared.config import get_settings

_settings = get_settings()

# The app logs one JSON line per request itself (web/requests.py): no second access log.
accesslog = None

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"mlsp": {"()": "shared.logs.make_formatter", "fmt": _settings.log_format}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "mlsp",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "gunicorn.error": {"level": _settings.log_level, "handlers": ["stderr"], "propagate": False}
    },
    # The app installs its own root handler (shared.logs.configure_logging) in each worker.
    "root": {"level": _settings.log_level, "handlers": []},
}


def on_starting(server) -> None:
    """Master, once: an empty metrics directory that every worker inherits."""
    server.mlsp_metrics_dir = metrics_dir.prepare(Path(_settings.metrics_dir), "web")
    server.log.info("metrics directory %s", server.mlsp_metrics_dir)


def child_exit(server, worker) -> None:
    """A worker exited (restart, max-requests, crash): its live gauges stop counting."""
    metrics_dir.mark_dead(worker.pid)


def on_exit(server) -> None:
    metrics_dir.remove(server.mlsp_metrics_dir)
