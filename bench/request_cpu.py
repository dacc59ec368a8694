"""Web CPU per sync predict under each setting a user's stack has and the benchmarks turn off.

    python -m bench.request_cpu [--rounds 5] [--requests 400]

wrk's req/s on two cores moved by a fifth between runs of the same code (bench/README.md), more
than the defaults cost; CPU time per request moves far less. This runs the web app in this
process (the Flask test client, one thread) against a real stack (granian web for the setup, a
2-process Celery worker answering), one app per configuration, and measures `process_time` per
single-row sync predict of a LogisticRegression, the configurations interleaved round by round:

- tuned: as every benchmark runs (LOG_LEVEL WARNING, RATE_LIMIT_ENABLED false);
- info: INFO request logs (one JSON line per request, to a file as a pipe would take it);
- limits: the rate limiter on (the prediction quota raised: one key stands for many clients);
- defaults: both, as the README and the Procfile run the web process.

Prints the median of the rounds for each, and its ratio to tuned.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from contextlib import ExitStack, redirect_stderr
from pathlib import Path

import joblib

import bench.serving as sv
from shared.config import Settings
from shared.logs import configure_logging

CONFIGS: dict[str, dict[str, str]] = {
    "tuned": {},
    "info": {"LOG_LEVEL": "INFO"},
    "limits": {"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_PREDICT": "1000000/minute"},
}
CONFIGS["defaults"] = CONFIGS["info"] | CONFIGS["limits"]


def build_apps() -> dict[str, tuple[object, Settings]]:
    """One app per configuration, on the stack the environment names (its settings over it)."""
    from web import create_app

    apps = {}
    for name, overrides in CONFIGS.items():
        settings = Settings(**{k.lower(): v for k, v in overrides.items()})
        apps[name] = (create_app(settings), settings)
    return apps


def cpu_ms(app, settings: Settings, url: str, headers: dict, n: int) -> float:
    """CPU milliseconds of this process per sync predict, over `n` of them."""
    # The root logger is the process's: each configuration sets its own level for its round.
    configure_logging(settings.log_level, settings.log_format)
    client = app.test_client()
    body = {"inputs": [sv.ROW]}
    for _ in range(20):  # warm this app's caches and connections
        client.post(url, json=body, headers=headers)
    start = time.process_time()
    for _ in range(n):
        resp = client.post(url, json=body, headers=headers)
        assert resp.status_code == 200, resp.get_data(as_text=True)
    return (time.process_time() - start) * 1000 / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    model = Path(tempfile.mkdtemp(prefix="mlsp-cpu-model-")) / "logreg.joblib"
    joblib.dump(sv.fit_models()["logreg"], model)
    with ExitStack() as stack:
        env = sv.bench_env(sv.services(stack), stack)
        ours = sv.start_ours(stack, env, "request-cpu")
        model_id = ours.upload("logreg", model)
        os.environ.update(env)
        apps = build_apps()
        url = f"/api/v1/models/{model_id}/predict?timeout=30"
        samples: dict[str, list[float]] = {name: [] for name in apps}
        log_file = stack.enter_context(tempfile.TemporaryFile("w"))
        with redirect_stderr(log_file):
            for i in range(args.rounds):
                for name in list(apps) if i % 2 == 0 else list(apps)[::-1]:
                    app, settings = apps[name]
                    samples[name].append(cpu_ms(app, settings, url, ours.headers, args.requests))
        logging.getLogger().handlers.clear()
        tuned = statistics.median(samples["tuned"])
        for name, values in samples.items():
            median = statistics.median(values)
            each = " ".join(f"{v:.2f}" for v in values)
            print(f"{name:>9}: {median:.2f} ms ({each}), {median / tuned:.2f}x tuned")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
