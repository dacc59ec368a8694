"""Many tenants on one stack: many models, a flooding neighbour, OIP against REST, big requests.

    python -m bench.tenants [--seconds 8] [--models 50] [--cases many,flood,oip,big]

Starts our stack as bench/serving.py does (granian web + a 2-process Celery worker, embedded
PostgreSQL/Redis unless DATABASE_URL/REDIS_URL are set) and measures, each figure against its
reference in the same run, back to back:

- many: single-row sync predict at 16 connections spread over N copies of the logreg (each fitted
  on its own sample, so each is its own artifact and cache entry), each request picking a model
  uniformly or by Zipf (s = 1.1), against the same load on one model;
- flood: another user's sequential sync predicts (one request at a time, each timed by the
  client: no correction for coordinated omission) while one user's backlog of async forest
  jobs drains, against the same client on an idle stack: p50 / p99 / max, and the largest
  queue wait the service reported;
- oip: OIP v2 infer against REST predict on the same model at 16 connections;
- big: one 10,000-row sync request against the in-process Flask baseline's rows/s.

Prints a table of ratios and writes bench/results/tenants.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import joblib
import numpy as np
import requests
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from bench import serving as sv
from bench.stack import ROOT, celery_worker, free_port, wait_http, web_server, wrk_script

ZIPF_S = 1.1
FLOOD_JOBS = 20_000
BIG_ROWS = 10_000
RESULTS = ROOT / "bench" / "results" / "tenants.json"


def fit_copies(n: int, folder: Path) -> list[Path]:
    """n logistic regressions like the serving benchmark's, each on its own sample."""
    paths = []
    for i in range(n):
        rng = np.random.default_rng(100 + i)
        x = rng.normal(size=(1000, sv.N_FEATURES))
        y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int)
        path = folder / f"logreg-{i}.joblib"
        joblib.dump(LogisticRegression(max_iter=1000).fit(x, y), path)
        paths.append(path)
    return paths


def fit_forest(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, sv.N_FEATURES))
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int)
    path = folder / "forest.joblib"
    joblib.dump(RandomForestClassifier(n_estimators=100, random_state=0).fit(x, y), path)
    return path


class Tenant(sv.Ours):
    """A user of its own (its own account and key) on a running stack."""

    def __init__(self, base: str, email: str) -> None:
        self.base = base
        self.api = f"{base}/api/v1"
        creds = {"email": email, "password": "bench-password-1"}
        requests.post(f"{self.api}/auth/register", json=creds, timeout=10)
        token = requests.post(f"{self.api}/auth/login", json=creds, timeout=10).json()
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        key = requests.post(
            f"{self.api}/api-keys", json={"name": "bench"}, headers=bearer, timeout=30
        ).json()["key"]
        self.headers = {"X-API-Key": key}

    def upload_all(self, paths: list[Path], prefix: str) -> list[str]:
        # Validation runs two at a time on the 2-process worker: keep both busy.
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(lambda p: self.upload(f"{prefix}-{p.stem}", p), paths))

    def spread(self, model_ids: list[str], weights: list[float], seconds: int) -> dict:
        """Sync predicts at 16 connections, each on a model drawn by `weights`."""
        paths = [f"/api/v1/models/{m}/predict?timeout=30" for m in model_ids]
        return wrk_script(
            self.base, paths, weights, {"inputs": [sv.ROW]}, 16, seconds, self.headers
        )

    def oip(self, name: str, seconds: int) -> dict:
        body = {
            "inputs": [
                {"name": "input-0", "shape": [1, sv.N_FEATURES], "datatype": "FP64", "data": sv.ROW}
            ]
        }
        path = f"/v2/models/{name}/infer"
        first = requests.post(f"{self.base}{path}", json=body, headers=self.headers, timeout=30)
        assert first.status_code == 200, first.text  # a run of errors would measure nothing
        return wrk_script(self.base, [path], [1.0], body, 16, seconds, self.headers)

    def one_by_one(self, model_id: str, seconds: float) -> dict:
        """Sequential sync predicts for `seconds`: each request's latency as the client saw it
        and the queue wait the service reported."""
        url = f"{self.api}/models/{model_id}/predict?timeout=30"
        latencies, waits = [], []
        with requests.Session() as session:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                started = time.perf_counter()
                job = session.post(
                    url, json={"inputs": [sv.ROW]}, headers=self.headers, timeout=60
                ).json()
                latencies.append((time.perf_counter() - started) * 1000)
                waits.append(job["timings"]["queue_ms"] or 0.0)
        return _latency_summary(latencies, waits)

    def flood(self, model_id: str, jobs: int) -> float:
        """Submit `jobs` single-row async jobs as fast as 8 threads can; seconds it took."""
        url = f"{self.api}/models/{model_id}/jobs"
        per_thread = jobs // 8
        started = time.perf_counter()

        def submit() -> None:
            with requests.Session() as session:
                for _ in range(per_thread):
                    resp = session.post(
                        url, json={"inputs": [sv.ROW]}, headers=self.headers, timeout=60
                    )
                    assert resp.status_code == 202, resp.text

        threads = [threading.Thread(target=submit) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - started


def _latency_summary(latencies: list[float], waits: list[float]) -> dict:
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max_ms": ordered[-1],
        "max_queue_ms": max(waits),
    }


def zipf(n: int) -> list[float]:
    return [1 / (rank**ZIPF_S) for rank in range(1, n + 1)]


def many_models(owner: Tenant, folder: Path, n: int, seconds: int) -> dict:
    ids = owner.upload_all(fit_copies(n, folder), "copy")
    one = ids[:1]
    for model_id in ids:  # load every model once in each process that may serve it
        owner.sync(model_id, 2, 1)
    out = {"models": n}
    for name, weights in (("uniform", [1.0] * n), ("zipf", zipf(n))):
        single, spread = sv.side_by_side(
            partial(owner.spread, one, [1.0], seconds),
            partial(owner.spread, ids, weights, seconds),
        )
        out[name] = {"one_model": single, "many": spread}
        sv.say("many", n, name, single["rps"], spread["rps"])
    return out


def noisy_neighbour(owner: Tenant, folder: Path, seconds: int) -> dict:
    victim = Tenant(owner.base, "victim@example.com")
    forest = fit_forest(folder)
    flood_id = owner.upload("flood-forest", forest)
    victim_id = victim.upload("victim-logreg", folder / "logreg-0.joblib")
    victim.sync(victim_id, 2, 2)
    owner.sync(flood_id, 2, 2)
    idle = victim.one_by_one(victim_id, seconds)
    submitter = threading.Thread(target=owner.flood, args=(flood_id, FLOOD_JOBS))
    submitter.start()
    time.sleep(2)  # a backlog has formed
    during = victim.one_by_one(victim_id, seconds)
    submitter.join()
    sv.say("flood", idle, during)
    return {"idle": idle, "during_flood": during, "flood_jobs": FLOOD_JOBS}


def oip_vs_rest(owner: Tenant, model_id: str, name: str, seconds: int) -> dict:
    owner.oip(name, 2)
    rest, oip = sv.side_by_side(
        partial(owner.sync, model_id, 16, seconds), partial(owner.oip, name, seconds)
    )
    sv.say("oip", rest["rps"], oip["rps"])
    return {"rest": rest, "oip": oip}


def big_request(stack: ExitStack, env: dict, owner: Tenant, folder: Path) -> dict:
    """One 10,000-row request: ours (sync predict) against the baseline's rows/s, per model."""
    rows = np.random.default_rng(3).normal(size=(BIG_ROWS, sv.N_FEATURES))
    body = json.dumps({"inputs": rows.round(6).tolist()})
    out = {}
    forest = folder / "forest.joblib"
    for name, path in (("logreg", folder / "logreg-0.joblib"), ("forest", forest)):
        model_id = owner.upload(f"big-{name}", path)
        url = sv.start_baseline(stack, env, path)
        base_runs, our_runs = [], []
        for _ in range(3):
            base_runs.append(_timed_post(url, body, {}))
            our_runs.append(owner.big_job(model_id, rows)["rows_per_s"])
        out[name] = {
            "baseline_rows_per_s": statistics.median(BIG_ROWS / s for s in base_runs),
            "ours_rows_per_s": statistics.median(our_runs),
        }
        sv.say("big", name, out[name])
    return out


def _timed_post(url: str, body: str, headers: dict) -> float:
    started = time.perf_counter()
    resp = requests.post(
        url, data=body, headers={**headers, "Content-Type": "application/json"}, timeout=120
    )
    resp.raise_for_status()
    return time.perf_counter() - started


def run(seconds: int, n_models: int, cases: set[str]) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="mlsp-bench-tenants-"))
    fit_copies(1, folder)
    fit_forest(folder)
    out: dict = {}
    with ExitStack() as stack:
        env = sv.bench_env(sv.services(stack), stack)
        env["MAX_QUEUE_DEPTH"] = str(FLOOD_JOBS * 2)
        port = free_port()
        stack.enter_context(web_server(port, env, name="web-tenants"))
        stack.enter_context(celery_worker(env, "worker-tenants"))
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/api/v1/health/live")
        owner = Tenant(base, "owner@example.com")
        if "many" in cases:
            out["many"] = many_models(owner, folder, n_models, seconds)
        if "oip" in cases:
            model_id = owner.upload("oip-logreg", folder / "logreg-0.joblib")
            owner.sync(model_id, 2, 2)
            out["oip"] = oip_vs_rest(owner, model_id, "oip-logreg", seconds)
        if "big" in cases:
            out["big"] = big_request(stack, env, owner, folder)
        if "flood" in cases:
            out["flood"] = noisy_neighbour(owner, folder, seconds)
    return out


def table(res: dict) -> str:
    lines = [f"{'case':52} {'reference':>14} {'ours':>14} {'ratio':>7}"]

    def line(label: str, ref: float, ours: float, fmt: str = ".0f") -> None:
        ratio = ours / ref
        lines.append(f"{label:52} {ref:>14{fmt}} {ours:>14{fmt}} {ratio:>7.2f}")

    if many := res.get("many"):
        for kind in ("uniform", "zipf"):
            pair = many[kind]
            label = f"{many['models']} models {kind} c=16 req/s vs one model"
            line(label, pair["one_model"]["rps"], pair["many"]["rps"])
    if oip := res.get("oip"):
        line("OIP infer vs REST predict c=16 req/s", oip["rest"]["rps"], oip["oip"]["rps"])
    for name, big in (res.get("big") or {}).items():
        line(
            f"one {BIG_ROWS:,}-row request {name} rows/s vs baseline",
            big["baseline_rows_per_s"],
            big["ours_rows_per_s"],
        )
    if flood := res.get("flood"):
        idle, during = flood["idle"], flood["during_flood"]
        for key in ("p50_ms", "p99_ms", "max_ms", "max_queue_ms"):
            line(
                f"other user's sync {key} idle | during flood (x idle)",
                idle[key],
                during[key],
                ".1f",
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--cases", default="many,oip,big,flood")
    args = parser.parse_args()
    res = run(args.seconds, args.models, set(args.cases.split(",")))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=2, default=str))
    print(table(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
