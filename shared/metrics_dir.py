"""Where prometheus-client's multiprocess mode keeps its per-process files.

Web server processes and Celery prefork children are separate processes; each writes its samples to
files in PROMETHEUS_MULTIPROC_DIR and the process that serves /metrics sums them. The directory
must be chosen before any metric object exists (prometheus_client picks its value class at
import; see `_switch_value_class` for when it was imported too early) and must start empty
(stale files from a previous run would be summed too). So this module never imports
prometheus_client itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(base: Path, role: str) -> Path:
    """Give this process tree (the web server's master, a Celery worker) an empty directory of its
    own — `<base>/<role>-<pid>` unless PROMETHEUS_MULTIPROC_DIR names one — and export it."""
    explicit = os.environ.get(ENV)
    path = Path(explicit) if explicit else base / f"{role}-{os.getpid()}"
    if not explicit:
        _sweep(base)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[ENV] = str(path)
    _switch_value_class()
    return path


def _switch_value_class() -> None:
    """If prometheus_client is already imported, make metrics created from now on write files.

    The `celery` command imports it before our code runs (it loads Flower's CLI plugin, and
    Flower imports prometheus_client), so its import-time choice saw no directory. Metric
    objects look `values.ValueClass` up when they are created, so resetting it is enough for
    the worker's metrics, which are created lazily (workers/metrics.py).
    """
    values = sys.modules.get("prometheus_client.values")
    if values is not None:
        values.ValueClass = values.get_value_class()


def remove(path: Path) -> None:
    """Delete a directory `prepare` made (not one the operator named)."""
    if os.environ.get(ENV) == str(path) and path.name.rsplit("-", 1)[-1] == str(os.getpid()):
        shutil.rmtree(path, ignore_errors=True)


def _sweep(base: Path) -> None:
    # Directories of processes that died without cleaning up (kill -9) would pile up in /tmp.
    if not base.is_dir():
        return
    for child in base.iterdir():
        pid = child.name.rsplit("-", 1)[-1]
        if child.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(child, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def mark_dead(pid: int) -> None:
    """Drop a finished child's live-gauge files (Celery child shutdown)."""
    if os.environ.get(ENV):
        from prometheus_client import multiprocess

        with contextlib.suppress(FileNotFoundError):
            multiprocess.mark_process_dead(pid)
