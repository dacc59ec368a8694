"""Serving benchmark: our queue-based service against an in-process Flask predictor, in one run.

    python -m bench.serving [--seconds 8]

Starts everything itself (embedded PostgreSQL/Redis unless DATABASE_URL/REDIS_URL are set):
the baseline (gunicorn, 2 workers, model in-process) and our stack as the Procfile runs it
(granian web, 2 x 16 threads, + a 2-process Celery worker), all up at once so that each ratio is
measured back to back (the sync figures: the median of 3 back-to-back pairs). Measures, for a
20-feature LogisticRegression and a 100-tree RandomForest: single-row req/s and p50/p99 at 1
and 16 connections (wrk); async submit-then-complete jobs/s; a 100,000-row job in rows/s
against raw batched predict; and micro-batching on vs off. For a typed pipeline (imputers,
scaler, one-hot encoder on a pandas frame): single-row req/s at 16 connections against the
baseline fed the same frame. Prints one table of ratios to the
baseline and writes bench/results/serving.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import orjson
import requests
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sqlalchemy import create_engine, make_url, text

from bench.stack import BIN, ROOT, celery_worker, free_port, gunicorn, wait_http, web_server, wrk

N_FEATURES = 20
ROW = [round(float(v), 4) for v in np.random.default_rng(1).normal(size=N_FEATURES)]


def fit_models() -> dict[str, object]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, N_FEATURES))
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int)
    return {
        "logreg": LogisticRegression(max_iter=1000).fit(x, y),
        "forest": RandomForestClassifier(n_estimators=100, random_state=0).fit(x, y),
    }


# A typed pipeline as data scientists ship it: numbers with missing values (median imputer and
# scaler), string categories (most-frequent imputer and one-hot), and a logistic regression,
# fitted on a pandas frame; the request row is an object with a missing value and a category.
TYPED_ROW = {"age": None, "income": 52000.0, "tenure": 3.5, "city": "Oslo", "plan": "pro"}


def fit_typed() -> object:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    n = 5000
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 12, n),
            "income": rng.normal(50000, 15000, n),
            "tenure": rng.exponential(3, n),
            "city": rng.choice(["Oslo", "Rome", "Lima", "Pune"], n),
            "plan": rng.choice(["basic", "pro", "team"], n),
        }
    )
    frame.loc[rng.random(n) < 0.1, "age"] = np.nan
    frame.loc[rng.random(n) < 0.1, "city"] = np.nan
    y = (frame["income"] > 50000) ^ (frame["plan"] == "team")
    numbers = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categories = make_pipeline(
        SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
    )
    pre = ColumnTransformer(
        [("num", numbers, ["age", "income", "tenure"]), ("cat", categories, ["city", "plan"])]
    )
    return make_pipeline(pre, LogisticRegression(max_iter=1000)).fit(frame, y)


def services(stack: ExitStack) -> dict[str, str]:
    if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
        return {"DATABASE_URL": os.environ["DATABASE_URL"], "REDIS_URL": os.environ["REDIS_URL"]}
    from mlsp_dev.environment import embedded_services

    return stack.enter_context(embedded_services(Path(tempfile.mkdtemp(prefix="mlsp-bench-"))))


def bench_env(base: dict[str, str], stack: ExitStack) -> dict[str, str]:
    """A database of its own (migrated), its own Redis key prefix, queue and artifact folder."""
    url = make_url(base["DATABASE_URL"]).set(drivername="postgresql+psycopg2")
    server = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"mlsp_bench_{secrets.token_hex(3)}"
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    stack.callback(_drop_database, server, name)
    env = {
        **os.environ,
        **base,
        "DATABASE_URL": url.set(database=name).render_as_string(hide_password=False),
        "REDIS_KEY_PREFIX": f"{name}:",
        "DEFAULT_QUEUE": name,
        "RATE_LIMIT_ENABLED": "false",
        "MODEL_STORE_DIR": tempfile.mkdtemp(prefix="mlsp-bench-store-"),
        "MAX_ROWS_PER_REQUEST": "100000",
        "MAX_BODY_MB": "128",
        "LOG_LEVEL": "WARNING",
        # One benchmark key stands for many clients: its 16 connections must all be able to wait
        # (the default caps, 8 per user and WEB_THREADS - 4 in all per web process, answer some
        # sync predicts 202 when the connections spread unevenly over the 2 processes).
        "MAX_WAITS_PER_USER": "32",
        "MAX_WAITS": "16",
    }
    subprocess.run(
        [str(BIN / "flask"), "--app", "web", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return env


def _drop_database(server, name: str) -> None:
    with server.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    server.dispose()


def start_baseline(stack: ExitStack, env: dict[str, str], path: Path) -> str:
    """The in-process predictor for one model file; returns its predict URL."""
    port = free_port()
    stack.enter_context(
        gunicorn(
            "bench.baseline_app:app",
            port,
            {**env, "BENCH_MODEL": str(path)},
            name=f"baseline-{path.stem}",
        )
    )
    wait_http(f"http://127.0.0.1:{port}/none")
    return f"http://127.0.0.1:{port}/predict"


PAIRS = 3


def side_by_side(
    base: Callable[[], dict], ours: Callable[[], dict], n_pairs: int = PAIRS
) -> tuple[dict, dict]:
    """`n_pairs` back-to-back measurements (baseline, then ours); the pair with the median
    ratio, all ratios kept. One pair alone moved by a fifth between runs on this machine."""
    pairs = [(base(), ours()) for _ in range(n_pairs)]
    b, o = median_by(pairs, lambda p: p[1]["rps"] / p[0]["rps"])
    ratios = sorted(round(p[1]["rps"] / p[0]["rps"], 3) for p in pairs)
    return b, {**o, "pair_ratios": ratios}


def median_by(items: list, key: Callable) -> Any:
    """The middle item by `key` (an odd count: one real measurement, not an average)."""
    return sorted(items, key=key)[len(items) // 2]


def baseline(url: str, connections: int, seconds: int, row: Any = ROW) -> dict:
    return wrk(url, {"inputs": [row]}, connections, seconds)


class Ours:
    """Our web + worker: account, key, uploads, and the measured calls."""

    def __init__(self, base: str) -> None:
        self.api = f"{base}/api/v1"
        creds = {"email": "bench@example.com", "password": "bench-password-1"}
        requests.post(f"{self.api}/auth/register", json=creds, timeout=10)
        token = requests.post(f"{self.api}/auth/login", json=creds, timeout=10).json()[
            "access_token"
        ]
        bearer = {"Authorization": f"Bearer {token}"}
        key = requests.post(
            f"{self.api}/api-keys", json={"name": "bench"}, headers=bearer, timeout=10
        ).json()["key"]
        self.headers = {"X-API-Key": key}

    def upload(self, name: str, path: Path) -> str:
        with open(path, "rb") as fh:
            body = requests.post(
                f"{self.api}/models",
                files={"file": fh},
                data={"name": name},
                headers=self.headers,
                timeout=60,
            ).json()
        deadline = time.monotonic() + 120  # the first validation starts the sandbox's imports
        while body["status"] == "validating" and time.monotonic() < deadline:
            time.sleep(0.5)
            body = requests.get(
                f"{self.api}/models/{body['id']}", headers=self.headers, timeout=10
            ).json()
        assert body["status"] == "ready", body
        return body["id"]

    def set_alias(self, name: str, alias: str, version: int) -> None:
        resp = requests.put(
            f"{self.api}/models/by-name/{name}/aliases/{alias}",
            json={"version": version},
            headers=self.headers,
            timeout=10,
        )
        assert resp.status_code == 200, resp.text

    def force_runtime(self, model_id: str, runtime: str) -> str:
        resp = requests.patch(
            f"{self.api}/models/{model_id}",
            json={"runtime": runtime},
            headers=self.headers,
            timeout=10,
        )
        return resp.json()["runtime"]

    def sync(self, model_id: str, connections: int, seconds: int, row: Any = ROW) -> dict:
        url = f"{self.api}/models/{model_id}/predict?timeout=30"
        return wrk(url, {"inputs": [row]}, connections, seconds, self.headers)

    def async_throughput(self, env: dict[str, str], model_id: str, seconds: int) -> dict:
        """Submit single-row jobs for `seconds` at 16 connections, then wait for all of them:
        jobs/s from the first job created to the last one finished."""
        started = datetime.now(UTC)
        url = f"{self.api}/models/{model_id}/jobs"
        submitted = wrk(url, {"inputs": [ROW]}, 16, seconds, self.headers, answered=False)
        engine = create_engine(env["DATABASE_URL"])
        deadline = time.monotonic() + 120
        with engine.connect() as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    text(
                        "SELECT count(*), count(*) FILTER (WHERE status = 'succeeded'),"
                        " EXTRACT(EPOCH FROM max(finished_at) - min(created_at))"
                        " FROM jobs WHERE model_id = :m AND created_at >= :t"
                    ),
                    {"m": model_id, "t": started},
                ).one()
                conn.commit()
                if row[0] and row[0] == row[1]:
                    break
                time.sleep(0.5)
        engine.dispose()
        return {
            "jobs": row[0],
            "succeeded": row[1],
            "seconds": float(row[2]),
            "jobs_per_s": row[1] / float(row[2]),
            "submit_rps": submitted["rps"],
        }

    def big_job(self, model_id: str, rows: np.ndarray) -> dict:
        """One sync request, timed from sending to the parsed answer. The body is encoded before
        the clock starts: the client's own JSON encoder is not the service (the stdlib's takes
        1.5 s for these 21 MB, orjson 0.1 s)."""
        body = orjson.dumps({"inputs": rows.round(6)}, option=orjson.OPT_SERIALIZE_NUMPY)
        headers = {**self.headers, "Content-Type": "application/json"}
        started = time.perf_counter()
        resp = requests.post(
            f"{self.api}/models/{model_id}/predict?timeout=60",
            data=body,
            headers=headers,
            timeout=120,
        )
        elapsed = time.perf_counter() - started
        job = resp.json()
        assert job["status"] == "succeeded", job.get("error")
        return {
            "rows": len(rows),
            "seconds": elapsed,
            "rows_per_s": len(rows) / elapsed,
            "timings": job["timings"],
        }


def start_ours(stack: ExitStack, env: dict[str, str], name: str) -> Ours:
    port = free_port()
    stack.enter_context(web_server(port, env, name=f"web-{name}"))
    stack.enter_context(celery_worker(env, f"worker-{name}"))
    wait_http(f"http://127.0.0.1:{port}/api/v1/health/live")
    return Ours(f"http://127.0.0.1:{port}")


def raw_batched(model, rows: np.ndarray) -> float:
    started = time.perf_counter()
    model.predict(rows)
    return len(rows) / (time.perf_counter() - started)


BIG_RUNS = 3


def big_job_compared(ours: Ours, model_id: str, model, rows: np.ndarray) -> dict:
    """The 100,000-row job against raw batched predict, both warmed up the same way and taken
    as the median of BIG_RUNS: a job this size runs on the worker's big-batch runtime (scikit-
    learn, not the ONNX session the single-row calls warmed), whose first load is a cache miss,
    and one 2-second measurement on this machine swings by a third."""
    raw_batched(model, rows)
    ours.big_job(model_id, rows)
    raw = median_by([raw_batched(model, rows) for _ in range(BIG_RUNS)], float)
    runs = [ours.big_job(model_id, rows) for _ in range(BIG_RUNS)]
    median = median_by(runs, lambda run: run["rows_per_s"])
    return {
        "raw_rows_per_s": raw,
        **median,
        "runs_rows_per_s": sorted(run["rows_per_s"] for run in runs),
    }


def by_name_compared(
    ours: Ours, model_id: str, name: str, seconds: int, n_pairs: int = PAIRS
) -> dict:
    """Sync predict by `name@production` against the same model by id, PAIRS back-to-back
    pairs at 1 and 16 connections: the name is resolved per request from the web process's
    cache (web/aliases/cache.py), so the two should be within noise of each other."""
    ours.set_alias(name, "production", 1)
    ref = f"{name}@production"
    ours.sync(ref, 16, 2)
    out = {}
    for c in (1, 16):
        by_id, by_name = side_by_side(
            partial(ours.sync, model_id, c, seconds), partial(ours.sync, ref, c, seconds), n_pairs
        )
        out[c] = {"by_id": by_id, "by_name": by_name}
    return out


def run_by_name(seconds: int, n_pairs: int) -> dict:
    """Only the by-name row: our stack alone, one LogisticRegression."""
    folder = Path(tempfile.mkdtemp(prefix="mlsp-bench-models-"))
    path = folder / "logreg.joblib"
    joblib.dump(fit_models()["logreg"], path)
    with ExitStack() as stack:
        env = bench_env(services(stack), stack)
        ours = start_ours(stack, env, "on")
        model_id = ours.upload("logreg", path)
        ours.sync(model_id, 16, 2)
        return {"by_name": by_name_compared(ours, model_id, "logreg", seconds, n_pairs)}


def by_name_lines(res: dict) -> list[str]:
    lines = []
    for c, pair in res["by_name"].items():
        by_id, by_name = pair["by_id"], pair["by_name"]
        ratio = f"{by_name['rps'] / by_id['rps']:.2f}"
        label = f"logreg sync c={c} by id | by name@alias req/s"
        lines.append(_line(label, f"{by_id['rps']:.0f}", f"{by_name['rps']:.0f}", ratio))
        ratios = by_name["pair_ratios"]
        pairs = " / ".join(f"{r:.2f}" for r in ratios)
        label = f"logreg sync c={c} by name ratios of the {len(ratios)} pairs"
        lines.append(_line(label, "", pairs))
        latency = f"logreg sync c={c} by id | by name p50 / p99 ms"
        lines.append(_line(latency, _latency(by_id), _latency(by_name)))
    return lines


def say(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def run(seconds: int) -> dict:
    """Every server stays up for the whole run and each comparison is measured back to back
    (baseline, then ours; batching on, then off): the machine's speed drifts within minutes,
    so a ratio is only as good as the time between its two measurements."""
    models = fit_models()
    folder = Path(tempfile.mkdtemp(prefix="mlsp-bench-models-"))
    paths = {name: folder / f"{name}.joblib" for name in models}
    for name, model in models.items():
        joblib.dump(model, paths[name])
    typed_path = folder / "typed.joblib"
    joblib.dump(fit_typed(), typed_path)
    big = np.random.default_rng(2).normal(size=(100_000, N_FEATURES))
    out: dict = {"baseline": {}, "ours": {}, "forced_sklearn": {}, "batching_off": {}}
    with ExitStack() as stack:
        base = services(stack)
        env = bench_env(base, stack)
        base_urls = {name: start_baseline(stack, env, paths[name]) for name in models}
        ours = start_ours(stack, env, "on")
        ids = {name: ours.upload(name, paths[name]) for name in models}
        # Batching off: a second web + worker with a database, key prefix and queue of its own.
        off = start_ours(
            stack,
            {**bench_env(base, stack), "BATCH_MAX_JOBS": "1", "BATCH_MAX_WAIT_MS": "0"},
            "off",
        )
        off_ids = {name: off.upload(name, paths[name]) for name in models}
        for name in models:
            ours.sync(ids[name], 16, 2)  # warm every worker process's cache
            off.sync(off_ids[name], 16, 2)
            out["baseline"][name], out["ours"][name] = {}, {}
            for c in (1, 16):
                out["baseline"][name][c], out["ours"][name][c] = side_by_side(
                    partial(baseline, base_urls[name], c, seconds),
                    partial(ours.sync, ids[name], c, seconds),
                )
            out["batching_off"][name] = {16: off.sync(off_ids[name], 16, seconds)}
            say(name, {k: out[k][name] for k in ("baseline", "ours", "batching_off")})
        for name in models:  # the same calls with ONNX Runtime switched off
            assert ours.force_runtime(ids[name], "sklearn") == "sklearn"
            ours.sync(ids[name], 16, 2)
            out["forced_sklearn"][name] = {}
            for c in (1, 16):
                out["forced_sklearn"][name][c] = ours.sync(ids[name], c, seconds)
                out["forced_sklearn"][name][f"baseline_{c}"] = baseline(base_urls[name], c, seconds)
            say("forced sklearn", name, out["forced_sklearn"][name])
            ours.force_runtime(ids[name], "auto")
        typed_url, typed_id = (
            start_baseline(stack, env, typed_path),
            ours.upload("typed", typed_path),
        )
        ours.sync(typed_id, 16, 2, TYPED_ROW)
        out["baseline"]["typed"], out["ours"]["typed"] = side_by_side(
            partial(baseline, typed_url, 16, seconds, TYPED_ROW),
            partial(ours.sync, typed_id, 16, seconds, TYPED_ROW),
        )
        say("typed", out["baseline"]["typed"], out["ours"]["typed"])
        out["by_name"] = by_name_compared(ours, ids["logreg"], "logreg", seconds)
        say("by name", out["by_name"])
        # A model of its own: only this run's jobs count from first created to last finished.
        async_id = ours.upload("logreg-async", paths["logreg"])
        ours.sync(async_id, 16, 2)
        out["async"] = ours.async_throughput(env, async_id, seconds)
        say("async", out["async"])
        out["big_job"] = {
            name: big_job_compared(ours, ids[name], models[name], big) for name in models
        }
    return out


def _line(label: str, base: str, ours: str, ratio: str = "") -> str:
    return f"{label:44} {base:>18} {ours:>18} {ratio:>7}"


def _latency(m: dict) -> str:
    return f"{m['p50_ms']:.2f} / {m['p99_ms']:.2f}"


def _model_lines(res: dict, name: str) -> list[str]:
    lines = []
    for c in (1, 16):
        b, o = res["baseline"][name][c], res["ours"][name][c]
        ratio = f"{o['rps'] / b['rps']:.2f}"
        lines.append(_line(f"{name} sync c={c} req/s", f"{b['rps']:.0f}", f"{o['rps']:.0f}", ratio))
        pairs = " / ".join(f"{r:.2f}" for r in o["pair_ratios"])
        lines.append(_line(f"{name} sync c={c} ratios of the {PAIRS} pairs", "", pairs))
        lines.append(_line(f"{name} sync c={c} p50 / p99 ms", _latency(b), _latency(o)))
    for c in (1, 16):
        b, f = res["forced_sklearn"][name][f"baseline_{c}"], res["forced_sklearn"][name][c]
        ratio = f"{f['rps'] / b['rps']:.2f}"
        lines.append(
            _line(
                f"{name} sync c={c} runtime=sklearn req/s",
                f"{b['rps']:.0f}",
                f"{f['rps']:.0f}",
                ratio,
            )
        )
    off, on = res["batching_off"][name][16], res["ours"][name][16]
    ratio = f"{on['rps'] / off['rps']:.2f}"
    lines.append(
        _line(
            f"{name} c=16 batching off | on req/s", f"{off['rps']:.0f}", f"{on['rps']:.0f}", ratio
        )
    )
    big = res["big_job"][name]
    ratio = f"{big['rows_per_s'] / big['raw_rows_per_s']:.3f}"
    lines.append(
        _line(
            f"{name} 100,000-row job rows/s (raw)",
            f"{big['raw_rows_per_s']:.0f}",
            f"{big['rows_per_s']:.0f}",
            ratio,
        )
    )
    return lines


def table(res: dict) -> str:
    """Baseline and ours side by side; ratio = ours / baseline."""
    lines = [_line("measure", "baseline", "ours", "ratio")]
    for name in ("logreg", "forest"):
        lines += _model_lines(res, name)
    b, o = res["baseline"]["typed"], res["ours"]["typed"]
    ratio = f"{o['rps'] / b['rps']:.2f}"
    lines.append(
        _line("typed pipeline sync c=16 req/s", f"{b['rps']:.0f}", f"{o['rps']:.0f}", ratio)
    )
    pairs = " / ".join(f"{r:.2f}" for r in o["pair_ratios"])
    lines.append(_line(f"typed pipeline sync c=16 ratios of the {PAIRS} pairs", "", pairs))
    a = res["async"]
    lines.append(_line("async submit -> succeeded jobs/s (logreg)", "", f"{a['jobs_per_s']:.0f}"))
    return "\n".join(lines + by_name_lines(res))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8, help="duration of each wrk run")
    parser.add_argument(
        "--by-name-only", action="store_true", help="only sync predict by name vs by id"
    )
    parser.add_argument("--pairs", type=int, default=PAIRS, help="pairs (--by-name-only)")
    args = parser.parse_args()
    if args.by_name_only:
        res = run_by_name(args.seconds, args.pairs)
        print("\n".join([_line("measure", "by id", "by name", "ratio"), *by_name_lines(res)]))
        name = "serving_by_name.json"
    else:
        res = run(args.seconds)
        print(table(res))
        name = "serving.json"
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / name).write_text(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
