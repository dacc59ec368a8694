"""Prometheus, Grafana and KEDA read the metrics the processes really export: every metric name
the dashboard (deploy/grafana/) and the KEDA triggers (deploy/kubernetes/) query is on the
/metrics of a running web app, worker and batch worker after a prediction and a batch; and the
compose wiring (scrape targets, ports, provisioning paths) points at what exists."""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from shared.redis_client import PREFIX, get_redis
from tests.deploy.manifests import render
from tests.fixtures.models import FEATURES, fit_frame_pipeline, insert_ready_model
from tests.fixtures.services import ROOT, celery_worker, free_port, isolated

DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "mlsp.json"
METRIC = re.compile(r"\bmlsp_[a-z0-9_]+\b")


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


@pytest.mark.e2e
def test_every_queried_metric_is_exported(user, tmp_path: Path):
    wanted = set(METRIC.findall(" ".join(_dashboard_queries() + _keda_queries())))
    app = isolated(METRICS_TOP_MODELS=5)
    ports = free_port(), free_port()
    worker_env = {**app.env, "WORKER_METRICS_PORT": str(ports[0])}
    batch_env = {**app.env, "WORKER_METRICS_PORT": str(ports[1]), "BATCH_CHUNK_ROWS": "10"}
    waiting = f"{PREFIX}pending:{uuid.uuid4()}"  # a backlog the per-model gauge names
    with (
        celery_worker(concurrency=1, env=worker_env, name=f"{app.name}-w"),
        celery_worker(
            concurrency=1, env=batch_env, name=f"{app.name}-b", queue=f"{app.name}.batches"
        ),
    ):
        model_id = insert_ready_model(user, fit_frame_pipeline(), tmp_path)
        _predict_and_batch(app.client, user, model_id)
        get_redis().rpush(waiting, "job-1")
        try:
            web = _names(app.client.get("/metrics").get_data(as_text=True))
        finally:
            get_redis().delete(waiting)
        urls = [f"http://127.0.0.1:{port}/metrics" for port in ports]
        exported = web | _scrape_until(urls, wanted - web)
    assert not wanted - exported, sorted(wanted - exported)
    assert len(wanted) >= 15  # the pattern found the queries' metrics


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
