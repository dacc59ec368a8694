"""Latency of scikit-learn vs ONNX Runtime through the worker's own runtimes.

For each model (fitted here on 5,000 generated rows, 20 features): compile it exactly as model
validation does (skl2onnx, probe rows, equivalence check), then time `predict` on one row and on
1,000 rows through SklearnRuntime and OnnxRuntime (one thread each, as in a worker process) and
print p50s with the speed-up. Writes the figures to bench/results/onnx_vs_sklearn-<time>.json.

    .venv/bin/python bench/onnx_vs_sklearn.py [--single 300] [--batch 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MODEL_STORE_DIR", tempfile.mkdtemp(prefix="mlsp-bench-"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.ensemble import (  # noqa: E402
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from shared.config import get_settings  # noqa: E402
from shared.store import get_store  # noqa: E402
from workers.runtimes.onnx import OnnxRuntime  # noqa: E402
from workers.runtimes.sklearn import SklearnRuntime  # noqa: E402
from workers.runtimes.threads import limit_threads  # noqa: E402
from workers.validation.compile import compile_model  # noqa: E402
from workers.validation.introspect import describe  # noqa: E402

N_FEATURES = 20
COLUMNS = [f"f{i}" for i in range(N_FEATURES)]


def dataset() -> tuple[np.ndarray, np.ndarray]:
    return make_classification(
        n_samples=5000, n_features=N_FEATURES, n_informative=10, n_classes=3, random_state=0
    )


def models(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    frame = pd.DataFrame(x, columns=COLUMNS)
    scaler_logreg = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())])
    return {
        "LogisticRegression": LogisticRegression(max_iter=1000).fit(x, y),
        "RandomForest-100": RandomForestClassifier(100, random_state=0).fit(x, y),
        "GradientBoosting": GradientBoostingClassifier(random_state=0).fit(x, y),
        "HistGradientBoosting": HistGradientBoostingClassifier(random_state=0).fit(x, y),
        "Pipeline(scaler+logreg, DataFrame)": scaler_logreg.fit(frame, y),
    }


def p50_us(call: Callable[[], Any], repeats: int) -> float:
    call()  # warm-up: first calls allocate
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1e6)
    return statistics.median(times)


def measure(name: str, model: Any, x: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    meta = describe(model)
    started = time.perf_counter()
    compiled = compile_model(uuid.uuid4(), model, meta, x[:1000].tolist(), get_settings())
    row: dict[str, Any] = {
        "model": name,
        "compile_s": round(time.perf_counter() - started, 3),
        "runtime": "onnx" if compiled.stored else "sklearn",
        "reason": compiled.reason,
    }
    sk = SklearnRuntime(model, meta["input_schema"]["feature_names"])
    one, batch = x[:1].tolist(), x[:1000].tolist()
    row["sklearn_1_us"] = p50_us(lambda: sk.predict(one), args.single)
    row["sklearn_1000_us"] = p50_us(lambda: sk.predict(batch), args.batch)
    if compiled.stored:
        ox = OnnxRuntime.load(get_store().local_path(compiled.stored.key))
        row["onnx_1_us"] = p50_us(lambda: ox.predict(one), args.single)
        row["onnx_1000_us"] = p50_us(lambda: ox.predict(batch), args.batch)
    return row


def _ratio(row: dict[str, Any], size: str) -> str:
    onnx = row.get(f"onnx_{size}_us")
    return f"{row[f'sklearn_{size}_us'] / onnx:.1f}x" if onnx else "-"


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'model':36s} {'runtime':8s} {'compile':>8s} | {'1 row sk':>10s} {'1 row onnx':>10s} "
        f"{'speed-up':>8s} | {'1k rows sk':>11s} {'1k rows onnx':>12s} {'speed-up':>8s}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        onnx1 = f"{r['onnx_1_us']:.0f} µs" if "onnx_1_us" in r else "-"
        onnxk = f"{r['onnx_1000_us'] / 1000:.2f} ms" if "onnx_1000_us" in r else "-"
        print(
            f"{r['model']:36s} {r['runtime']:8s} {r['compile_s']:7.2f}s | "
            f"{r['sklearn_1_us']:7.0f} µs {onnx1:>10s} {_ratio(r, '1'):>8s} | "
            f"{r['sklearn_1000_us'] / 1000:8.2f} ms {onnxk:>12s} {_ratio(r, '1000'):>8s}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--single", type=int, default=300, help="repeats of the 1-row call")
    parser.add_argument("--batch", type=int, default=30, help="repeats of the 1,000-row call")
    args = parser.parse_args()
    limit_threads()  # as in a worker process: one thread for BLAS, OpenMP and ONNX Runtime
    x, y = dataset()
    rows = [measure(name, model, x, args) for name, model in models(x, y).items()]
    print_table(rows)
    out = ROOT / "bench" / "results" / f"onnx_vs_sklearn-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cpu_count": os.cpu_count(), "rows": rows}, indent=2))
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
