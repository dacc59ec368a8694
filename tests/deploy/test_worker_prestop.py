"""The worker Deployment's preStop script, run as the kubelet runs it, against a real worker
named as the pod's (<pod>@<node>): it stops the worker consuming its queue and returns once no
task runs (Celery's warm shutdown then finds an idle pool)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.celery_config import create_producer
from shared.config import Settings
from tests.deploy.manifests import find, render
from tests.fixtures.services import ROOT, _celery_cmd, log_path, stop_process_group, wait_for_worker

pytestmark = pytest.mark.e2e


def _pre_stop(deployment: str) -> list[str]:
    spec = find(render(), "Deployment", deployment)["spec"]["template"]["spec"]
    return spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]


def _queues(producer, node: str) -> list[str] | None:
    replies = producer.control.inspect(destination=[node], timeout=2).active_queues() or {}
    return None if node not in replies else [q["name"] for q in replies[node]]


def test_pre_stop_cancels_the_queue_and_returns_when_idle(private_queue):
    """The batch worker's hook is the same script (tests/deploy/test_kubernetes.py)."""
    pod, node = f"mlsp-w-{os.getpid()}-{time.monotonic_ns()}", "node-a"
    hostname, queue = f"{pod}@{node}", private_queue.name
    env = {
        **os.environ,
        **private_queue.env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "POD_NAME": pod,
        "NODE_NAME": node,
        "CELERY_QUEUE": queue,
        "PRESTOP_WAIT_S": "60",
    }
    producer = create_producer(Settings(REDIS_URL=os.environ["REDIS_URL"]))
    with open(log_path("worker-prestop"), "ab") as log:
        worker = subprocess.Popen(
            _celery_cmd(1, hostname, queue),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_worker(hostname, env["REDIS_URL"])
            assert _queues(producer, hostname) == [queue]
            started = time.monotonic()
            hook = subprocess.run(_pre_stop("mlsp-worker"), env=env, cwd=ROOT, timeout=90)
            took = time.monotonic() - started
            assert hook.returncode == 0
            assert took < 60, f"returned only at its deadline ({took:.0f} s)"
            assert _queues(producer, hostname) == []  # consumes nothing any more
            assert worker.poll() is None  # stopping is SIGTERM's job, after the hook
        finally:
            stop_process_group(worker)
