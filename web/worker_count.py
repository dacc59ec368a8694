"""The live worker count of `GET /api/v1/health`, refreshed in the background (issue 18).

A broadcast ping per request let ~40 concurrent anonymous requests deadlock the shared producer's
kombu pool (`broadcast` holds one pooled connection while `Mailbox._publish` waits for a second)
and hang every request of the process. Here one daemon thread per web process pings through a
Celery app of its own (its own pool, one caller) every HEALTH_WORKERS_REFRESH_S, and requests
read the last count: no broker round trip, no lock a request could wait on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter

from celery import Celery

from shared.celery_config import create_producer
from shared.config import Settings

log = logging.getLogger(__name__)

PING_TIMEOUT_S = 0.5


class WorkerCount:
    """Workers that answered the last ping, by host (nothing until the first answer lands,
    ~0.5 s after the first request of a process)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._hosts: dict[str, int] = {}
        self._pid: int | None = None
        self._start_lock = threading.Lock()

    def get(self) -> int:
        return sum(self.by_host().values())

    def by_host(self) -> dict[str, int]:
        """Live workers per host: the part of each Celery node name after `@` (`worker@%h`)."""
        if self._pid != os.getpid():  # first use in this process (web servers fork)
            self._start()
        return self._hosts

    def _start(self) -> None:
        with self._start_lock:  # one starter; taken once per process, never after
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._hosts = {}
            threading.Thread(target=self._run, name="mlsp-worker-count", daemon=True).start()

    def _run(self) -> None:
        producer = create_producer(self._settings)
        while True:
            self._hosts = _ping(producer)  # one assignment: readers see a whole snapshot
            time.sleep(self._settings.health_workers_refresh_s)


def _ping(producer: Celery) -> dict[str, int]:
    try:
        with producer.connection_for_write() as conn:
            replies = producer.control.ping(timeout=PING_TIMEOUT_S, connection=conn) or []
    except Exception:  # the broker may be down; health reports that separately
        log.warning("health: worker ping failed", exc_info=True)
        return {}
    return count_by_host(replies)


def count_by_host(replies: list[dict]) -> dict[str, int]:
    """{host: workers} from ping replies ([{node name: answer}, ...]); a name without `@` is
    its own host."""
    nodes = (name for reply in replies for name in reply)
    return dict(sorted(Counter(name.rpartition("@")[2] for name in nodes).items()))
