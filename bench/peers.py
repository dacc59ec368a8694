"""Our stack against Seldon MLServer 1.7 (its scikit-learn runtime) on the same models, in one run.

    make bench-peers ARGS='--seconds 8 --rounds 3'    (= .venv/bin/python -m bench.peers)

MLServer runs from a virtualenv of its own (.venv-peers, made by `make bench-peers`: MLServer
pins dependencies of its own, and uvloop newer than 0.21 breaks it). Our stack starts as
bench/tenants.py starts it (granian web 2 x 16 threads + a 2-process Celery worker, embedded
PostgreSQL/Redis unless DATABASE_URL/REDIS_URL are set). One MLServer per `parallel_workers`
value in WORKERS serves each model twice: plain, and with adaptive batching (max_batch_size 16,
max_batch_time `--max-batch-time` in its model-settings.json). Everything is up at once;
single-row requests at 16 connections (wrk) go, in each of `--rounds` rounds, to ours (REST
predict, OIP infer) and to every MLServer variant (V2 REST infer, the same row as an FP64
[1, 20] tensor), the order rotated each round so that the machine's drift weighs on all alike.
Each figure is the round with the median req/s. Prints the table and the ratios ours /
MLServer's best variant, writes bench/results/peers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import joblib
import requests
import sklearn

from bench import serving as sv
from bench import stack as st
from bench.ab import worktree
from bench.stack import ROOT, celery_worker, free_port, process, wait_http, web_server, wrk
from bench.tenants import Tenant

PEERS_BIN = ROOT / ".venv-peers" / "bin"
CONNECTIONS = 16
MODELS = ("logreg", "forest")
# MLServer answers HTTP in one process and predicts in `parallel_workers` processes. 2 matches
# the 2 cores and our worker's 2 processes; 1 is its default (the HTTP process then has a core
# of its own to share with wrk).
WORKERS = (1, 2)
# At most 16 requests are in flight. Its batcher takes what has queued and waits up to
# max_batch_time for more (0 turns batching off); ours takes what has arrived without waiting.
MAX_BATCH_TIME = 0.001
TARGETS = {"logreg": 1.3, "forest": 1.5}
OIP_BODY = {
    "inputs": [{"name": "input-0", "shape": [1, sv.N_FEATURES], "datatype": "FP64", "data": sv.ROW}]
}
RESULTS = ROOT / "bench" / "results" / "peers.json"

Measure = Callable[[str, int], dict]  # (model name, seconds) -> wrk's figures


def check_peers_venv() -> None:
    """The models are pickled here and unpickled there: the scikit-learn versions must match."""
    if not (PEERS_BIN / "mlserver").exists():
        raise SystemExit(f"{PEERS_BIN / 'mlserver'} is missing: run `make bench-peers`")
    theirs = subprocess.run(
        [str(PEERS_BIN / "python"), "-c", "import sklearn; print(sklearn.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if theirs != sklearn.__version__:
        raise SystemExit(f"scikit-learn {theirs} in .venv-peers, {sklearn.__version__} here")


def write_repository(
    folder: Path, models: dict[str, Path], workers: int, batch_time: float = MAX_BATCH_TIME
) -> int:
    """An MLServer model repository: settings.json and, per model, a plain and a batched entry.
    Returns its HTTP port."""
    folder.mkdir(parents=True)
    port = free_port()
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "parallel_workers": workers,
        # Its default logs every request; ours runs at LOG_LEVEL=WARNING.
        "debug": False,
        "metrics_dir": str(folder / ".metrics"),
        "environments_dir": str(folder / ".envs"),
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    for name, path in models.items():
        batching = {"max_batch_size": CONNECTIONS, "max_batch_time": batch_time}
        for entry, extra in ((name, {}), (f"{name}-batched", batching)):
            (folder / entry).mkdir()
            model_settings = {
                "name": entry,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": str(path), "version": "v1"},
                **extra,
            }
            (folder / entry / "model-settings.json").write_text(json.dumps(model_settings))
    return port


class MLServer:
    """One MLServer process tree serving a repository written by `write_repository`."""

    def __init__(
        self,
        stack: ExitStack,
        folder: Path,
        models: dict[str, Path],
        workers: int,
        batch_time: float,
    ):
        port = write_repository(folder, models, workers, batch_time)
        self.base = f"http://127.0.0.1:{port}"
        path = f"{PEERS_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
        env = {**os.environ, "PATH": path}
        env.pop("VIRTUAL_ENV", None)
        cmd = [str(PEERS_BIN / "mlserver"), "start", str(folder)]
        stack.enter_context(process(cmd, env, f"mlserver-{workers}"))
        for name in models:
            self.wait_ready(name)
            self.wait_ready(f"{name}-batched")

    def wait_ready(self, model: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                url = f"{self.base}/v2/models/{model}/ready"
                if requests.get(url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"MLServer model {model} at {self.base}")

    def predict_one(self, model: str) -> object:
        resp = requests.post(f"{self.base}/v2/models/{model}/infer", json=OIP_BODY, timeout=30)
        resp.raise_for_status()
        return resp.json()["outputs"][0]["data"][0]

    def infer(self, model: str, seconds: int) -> dict:
        return wrk(f"{self.base}/v2/models/{model}/infer", OIP_BODY, CONNECTIONS, seconds)

    def infer_batched(self, model: str, seconds: int) -> dict:
        return self.infer(f"{model}-batched", seconds)


def contestants(owner: Tenant, ids: dict[str, str], servers: dict[int, MLServer]) -> dict:
    """Label -> measure. Ours is called with the model's id (REST) or name (OIP)."""
    out: dict[str, Measure] = {
        "ours REST predict": lambda m, s: owner.sync(ids[m], CONNECTIONS, s),
        "ours OIP infer": lambda m, s: owner.oip(m, s),
    }
    for workers, server in servers.items():
        out[f"MLServer {workers} worker(s)"] = server.infer
        out[f"MLServer {workers} worker(s), batching"] = server.infer_batched
    return out


def check_answers(servers: dict[int, MLServer], models: dict[str, object]) -> None:
    """Every MLServer entry predicts what the model predicts in-process for the row."""
    for name, model in models.items():
        expected = model.predict([sv.ROW])[0].item()
        for server in servers.values():
            for entry in (name, f"{name}-batched"):
                got = server.predict_one(entry)
                assert got == expected, (entry, got, expected)


def interleaved(measures: dict[str, Measure], rounds: int, seconds: int) -> dict:
    """`rounds` rounds over every model and contestant, the order rotated each round."""
    labels = list(measures)
    runs: dict = {m: {label: [] for label in labels} for m in MODELS}
    for r in range(rounds):
        order = labels[r % len(labels) :] + labels[: r % len(labels)]
        for model in MODELS:
            for label in order:
                runs[model][label].append(measures[label](model, seconds))
            sv.say("round", r + 1, model, {k: round(v[-1]["rps"]) for k, v in runs[model].items()})
    return {
        model: {label: _median_round(rs) for label, rs in by.items()} for model, by in runs.items()
    }


def _median_round(runs: list[dict]) -> dict:
    return {**sv.median_by(runs, lambda run: run["rps"]), "rounds_rps": [r["rps"] for r in runs]}


def run(seconds: int, rounds: int, batch_time: float, rev: str) -> dict:
    check_peers_venv()
    fitted = sv.fit_models()
    folder = Path(tempfile.mkdtemp(prefix="mlsp-bench-peers-"))
    paths = {name: folder / f"{name}.joblib" for name in MODELS}
    for name in MODELS:
        joblib.dump(fitted[name], paths[name])
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, folder, ignore_errors=True)
        env = our_env(stack, rev)
        port = free_port()
        stack.enter_context(web_server(port, env, name="web-peers"))
        stack.enter_context(celery_worker(env, "worker-peers"))
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/api/v1/health/live")
        owner = Tenant(base, "peers@example.com")
        ids = {name: owner.upload(name, paths[name]) for name in MODELS}
        servers = {
            w: MLServer(stack, folder / f"mlserver-{w}", paths, w, batch_time) for w in WORKERS
        }
        check_answers(servers, {name: fitted[name] for name in MODELS})
        measures = contestants(owner, ids, servers)
        for model in MODELS:  # warm every process's cache and connections
            for measure in measures.values():
                measure(model, 2)
        res = interleaved(measures, rounds, seconds)
        return {"rev": rev, "seconds": seconds, "max_batch_time": batch_time, **res}


def our_env(stack: ExitStack, rev: str) -> dict[str, str]:
    """Our processes' environment, running (and migrating) from `rev`'s tree as bench/ab.py
    does: others may be editing the checkout while a run lasts."""
    tree = worktree(stack, rev)
    st.ROOT = sv.ROOT = tree
    return {**sv.bench_env(sv.services(stack), stack), "PYTHONPATH": str(tree)}


def best_peer(by_label: dict) -> str:
    peers = [label for label in by_label if label.startswith("MLServer")]
    return max(peers, key=lambda label: by_label[label]["rps"])


def table(res: dict) -> str:
    lines = [f"{'case (c=16, single row)':44} {'req/s':>7} {'p50 / p99 ms':>15}  rounds' req/s"]
    for model in MODELS:
        for label, m in res[model].items():
            rounds = " / ".join(f"{rps:.0f}" for rps in m["rounds_rps"])
            latency = f"{m['p50_ms']:.2f} / {m['p99_ms']:.2f}"
            lines.append(f"{model + ' ' + label:44} {m['rps']:>7.0f} {latency:>15}  {rounds}")
    lines.append("")
    for model in MODELS:
        best = best_peer(res[model])
        for ours in ("ours REST predict", "ours OIP infer"):
            ratio = res[model][ours]["rps"] / res[model][best]["rps"]
            pairs = zip(res[model][ours]["rounds_rps"], res[model][best]["rounds_rps"], strict=True)
            rounds = " / ".join(f"{o / p:.2f}" for o, p in pairs)
            label = f"{model}: {ours} / {best}"
            lines.append(f"{label:68} {ratio:5.2f} (rounds {rounds}; target >= {TARGETS[model]})")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8, help="duration of each wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--rev", default=".", help="our stack at this git revision (a worktree); '.': the checkout"
    )
    parser.add_argument(
        "--max-batch-time", type=float, default=MAX_BATCH_TIME, help="MLServer's, in seconds"
    )
    args = parser.parse_args()
    res = run(args.seconds, args.rounds, args.max_batch_time, args.rev)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=2, default=str))
    print(table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
