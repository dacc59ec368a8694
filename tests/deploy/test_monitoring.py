"""Prometheus, Grafana and KEDA read the metrics the processes really export: every metric name
the dashboard (deploy/grafana/) and the KEDA triggers (deploy/kubernetes/) query is on the
/metrics of a running web app and worker after a prediction and a batch, and every query finds
series on a real Prometheus scraping them; the compose wiring (scrape targets, ports,
provisioning paths) points at what exists."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from shared.redis_client import PREFIX, get_redis
from tests.deploy.manifests import render
from tests.fixtures.api import register_and_login
from tests.fixtures.live import serve
from tests.fixtures.models import FEATURES, fit_frame_pipeline, insert_ready_model
from tests.fixtures.services import ROOT, celery_worker, free_port, isolated, log_path

DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "mlsp.json"
METRIC = re.compile(r"\bmlsp_[a-z0-9_]+\b")
PROMETHEUS = shutil.which("prometheus")
SCRAPE = "1s"
RATE_WINDOW = "30s"  # Grafana's $__rate_interval: several scrapes at SCRAPE


def _dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def _keda_queries() -> list[str]:
    return [
        t["metadata"]["query"]
        for d in render()
        if d["kind"] == "ScaledObject"
        for t in d["spec"]["triggers"]
    ]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _names(text: str) -> set[str]:
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_dashboard_covers_what_operators_watch():
    queries = " ".join(_dashboard_queries())
    for wanted in (
        "mlsp_pending_jobs_by_model",  # backlog per model
        "mlsp_job_queue_seconds_bucket",  # queue wait
        "mlsp_http_request_duration_seconds_bucket",  # latency percentiles
        "mlsp_jobs_finished_total",  # throughput
        "mlsp_worker_busy_seconds_total",  # worker utilisation
        "mlsp_model_cache_hits_total",  # cache hit rate
    ):
        assert wanted in queries, wanted
    assert "histogram_quantile(0.99" in queries


def _predict_and_batch(client, user, model_id: str) -> None:
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    resp = client.post(
        f"/api/v1/models/{model_id}/predict?timeout=30", json={"inputs": rows}, headers=user.headers
    )
    assert resp.status_code == 200, resp.json
    csv = pd.DataFrame(rows * 20, columns=FEATURES).to_csv(index=False).encode()
    resp = client.post(
        f"/api/v1/models/{model_id}/batches",
        data={"file": (io.BytesIO(csv), "in.csv")},
        headers=user.headers,
        content_type="multipart/form-data",
    )
    assert resp.status_code == 202, resp.json
    deadline = time.monotonic() + 60
    while True:
        body = client.get(resp.headers["Location"], headers=user.headers).json
        if body["status"] not in ("queued", "running") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert body["status"] == "succeeded", body


def _scrape_until(urls: list[str], wanted: set[str], timeout: float = 15) -> set[str]:
    """Sample names of all exporters, once they show `wanted` (a child writes its samples as
    its task ends) or at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        names = set().union(*(_names(requests.get(u, timeout=5).text) for u in urls))
        if wanted <= names or time.monotonic() > deadline:
            return names
        time.sleep(0.3)


@dataclass
class Running:
    """A web app served over HTTP and a worker (of jobs and batches) with its exporter, after one
    prediction and one batch (the counters stay in the processes; each test starts with empty
    tables and Redis, tests/fixtures/services.py)."""

    queue: str
    targets: dict[str, str]  # Prometheus job -> host:port

    def url(self, job: str) -> str:
        return f"http://{self.targets[job]}/metrics"


@pytest.fixture(scope="module")
def running(tmp_path_factory) -> Iterator[Running]:
    iso = isolated(METRICS_TOP_MODELS=5, BATCH_CHUNK_ROWS=10)
    port = free_port()
    env = {**iso.env, "WORKER_METRICS_PORT": str(port)}
    # One worker on both queues (the job and the batch worker run the same exporter code):
    # one process start fewer.
    queues = f"{iso.name},{iso.name}.batches"
    with (
        celery_worker(concurrency=2, env=env, name=f"{iso.name}-w", queue=queues),
        serve(iso.client.application) as web,
    ):
        user = register_and_login(iso.client)
        model_id = insert_ready_model(user, fit_frame_pipeline(), tmp_path_factory.mktemp("m"))
        _predict_and_batch(iso.client, user, model_id)
        targets = {"mlsp-web": web.removeprefix("http://"), "mlsp-worker": f"127.0.0.1:{port}"}
        yield Running(iso.name, targets)


@pytest.fixture
def backlog() -> Iterator[None]:
    """A job id waiting for one model: what the per-model gauge names."""
    waiting = f"{PREFIX}pending:{uuid.uuid4()}"
    get_redis().rpush(waiting, "job-1")
    yield
    get_redis().delete(waiting)


@pytest.mark.e2e
@pytest.mark.usefixtures("backlog")
def test_every_queried_metric_is_exported(running):
    wanted = set(METRIC.findall(" ".join(_dashboard_queries() + _keda_queries())))
    web = _names(requests.get(running.url("mlsp-web"), timeout=5).text)
    exported = web | _scrape_until([running.url("mlsp-worker")], wanted - web)
    assert not wanted - exported, sorted(wanted - exported)
    assert len(wanted) >= 15  # the pattern found the queries' metrics


def _prometheus(targets: dict[str, str], port: int, folder: Path, log) -> subprocess.Popen:
    """Prometheus on 127.0.0.1:`port`, scraping each job's one target every SCRAPE."""
    jobs = [{"job_name": job, "static_configs": [{"targets": [t]}]} for job, t in targets.items()]
    config = {"global": {"scrape_interval": SCRAPE}, "scrape_configs": jobs}
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    command = [
        PROMETHEUS,
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def _query(base: str, expr: str) -> list:
    """The instant query's result; a PromQL error fails here with Prometheus's message."""
    body = requests.get(f"{base}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def _until(condition, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except requests.ConnectionError:
            value = None
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def _as_run(expr: str, queue: str) -> str:
    """A query as the test's Prometheus can answer it: Grafana's rate window spelt out, and the
    deployment's queue name (mlsp) replaced by the test's own."""
    expr = expr.replace("$__rate_interval", RATE_WINDOW)
    return expr.replace('queue="mlsp', f'queue="{queue}')


@pytest.mark.e2e
@pytest.mark.skipif(not PROMETHEUS, reason="no prometheus binary (Debian package prometheus)")
@pytest.mark.usefixtures("backlog")
def test_every_query_answers_on_a_real_prometheus(running, tmp_path):
    """Prometheus scrapes the running processes; every dashboard panel's and KEDA trigger's
    query parses, and finds series: the label values they filter on (routes, queues, jobs)
    are the ones the processes export."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(log_path("prometheus"), "ab") as log:
        proc = _prometheus(running.targets, port, tmp_path, log)
    try:
        up = _until(lambda: len(_query(base, "up == 1")) == len(running.targets))
        assert up, _query(base, "up")
        sampled = "count_over_time(up[1m]) >= 3"  # rate() needs a few samples of each
        _until(lambda: len(_query(base, sampled)) == len(running.targets))
        empty = [
            expr
            for expr in _dashboard_queries() + _keda_queries()
            if not _query(base, _as_run(expr, running.queue))
        ]
        assert not empty
    finally:
        proc.terminate()
        proc.wait(10)


def test_keda_queries_name_the_queues_the_workers_consume():
    queries = " ".join(_keda_queries())
    assert "max(mlsp_pending_jobs)" in queries
    assert 'mlsp_queue_depth{queue="mlsp.batches"}' in queries


def test_prometheus_scrapes_every_exporter_of_compose():
    services = _compose()["services"]
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        sd["names"][0]: sd["port"]
        for job in config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
    }
    exporters = {
        name: int(s["environment"]["WORKER_METRICS_PORT"])
        for name, s in services.items()
        if "WORKER_METRICS_PORT" in (s.get("environment") or {})
    }
    assert {"worker", "batch"} <= set(exporters)
    assert targets == {"web": 8000, **exporters}
    for name, port in exporters.items():
        assert str(port) in services[name]["expose"], name
        assert services[name]["environment"]["WORKER_METRICS_HOST"] == "0.0.0.0"
    assert exporters["batch"] == 9102  # BATCH_METRICS_PORT of the Procfile


def _mounts(service: dict) -> dict[str, Path]:
    pairs = (v.split(":")[:2] for v in service["volumes"] if v.startswith("./"))
    return {target: ROOT / source for source, target in pairs}


def test_grafana_is_provisioned_from_the_repository():
    services = _compose()["services"]
    mounts = _mounts(services["grafana"])
    provisioning = mounts["/etc/grafana/provisioning"]
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (source,) = datasource["datasources"]
    assert source["url"] == "http://prometheus:9090" and "prometheus" in services
    provider = yaml.safe_load((provisioning / "dashboards" / "mlsp.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert (mounts[path] / DASHBOARD.name).read_text() == DASHBOARD.read_text()
    uids = {
        t["datasource"]["uid"]
        for p in json.loads(DASHBOARD.read_text())["panels"]
        for t in p.get("targets", [])
    }
    assert uids == {source["uid"]}
    config = _mounts(services["prometheus"])["/etc/prometheus/prometheus.yml"]
    assert config == DEPLOY / "prometheus" / "prometheus.yml"
