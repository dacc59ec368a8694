"""Batch benchmark: a file through POST /models/{id}/batches against raw predict() in-process.

    python -m bench.batches [--rows N] [--big-rows N] [--idle-seconds S]

Starts the stack as the Procfile runs it (granian web 2 x 16 threads, the 2-process job worker,
the `batch` worker at nice 10 with concurrency 2) on embedded PostgreSQL/Redis unless
DATABASE_URL/REDIS_URL are set (a scratch database, key prefix and queue of its own, dropped
after). Uploads the 20-feature LogisticRegression and 100-tree RandomForest of bench/serving.py
and measures, per model and per input format (a CSV and a Parquet file of --rows rows):

- rows/s from the first byte of the upload to the batch's `succeeded` (polled every 0.1 s), the
  batch alone, then again with the other user's loop below running, against raw `predict()`
  of the same model on the same rows in this process, ONNX Runtime on the service's own
  compiled graph (one thread, as the workers run it), and a one-process script reading the
  same CSV, predicting and writing a CSV;
- where the time goes: the batch's timestamps (upload, planning, chunks, the result) and the
  same stages timed in-process on the same file (shared/batches/ code, one process);
- the peak RSS of every process of the stack (sampled every 0.2 s), also through a
  --big-rows CSV (the memory figure: it must not grow with the file);
- another user's single-row sync predict latency (one client, one request at a time, each
  timed: no correction for coordinated omission, so a stall shows as one slow sample, not as
  the requests it delayed) while each batch runs, against the same loop idle just before.

The results are checked against raw predict (every prediction equal). Prints a table and writes
bench/results/batches.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import psutil
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import requests
from sqlalchemy import create_engine, text

from bench.serving import ROW, Ours, bench_env, fit_models, median_by, say, services
from bench.stack import BIN, ROOT, celery_worker, free_port, process, wait_http, web_server

N_FEATURES = 20
BLOCK_ROWS = 250_000  # rows generated and written at a time
POLL_S = 0.1
SAMPLE_S = 0.2
RAW_RUNS = 3  # raw predict(); ONNX and the one-process script run once (a forest's take ~20 s)


# -- the files -------------------------------------------------------------------------------


def write_files(folder: Path, rows: int, seed: int, parquet: bool) -> dict[str, Path]:
    """A CSV (and a Parquet file) of `rows` N(0,1) rows rounded to 4 decimals, columns x0..x19
    as the service names a numpy-fitted model's; written in blocks, never whole in memory."""
    names = [f"x{i}" for i in range(N_FEATURES)]
    paths = {"csv": folder / f"rows-{rows}.csv"}
    if parquet:
        paths["parquet"] = folder / f"rows-{rows}.parquet"
    schema = pa.schema([(name, pa.float64()) for name in names])
    rng = np.random.default_rng(seed)
    csv_writer = pacsv.CSVWriter(paths["csv"], schema)
    pq_writer = pq.ParquetWriter(paths["parquet"], schema) if parquet else None
    try:
        for start in range(0, rows, BLOCK_ROWS):
            block = rng.normal(size=(min(BLOCK_ROWS, rows - start), N_FEATURES)).round(4)
            table = pa.Table.from_arrays(list(block.T), schema=schema)
            csv_writer.write_table(table)
            if pq_writer is not None:
                pq_writer.write_table(table)
    finally:
        csv_writer.close()
        if pq_writer is not None:
            pq_writer.close()
    return paths


def read_matrix(path: Path) -> np.ndarray:
    return pq.read_table(path).to_pandas().to_numpy(dtype=np.float64)


class MultipartFile:
    """A multipart/form-data body streamed from disk in 1 MB blocks with its length known up
    front (requests' `files=` builds the whole body in memory first)."""

    BLOCK = 1 << 20

    def __init__(self, path: Path, fields: dict[str, str]) -> None:
        boundary = secrets.token_hex(16)
        head = "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in fields.items()
        )
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file";'
            f' filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        self.head, self.tail = head.encode(), f"\r\n--{boundary}--\r\n".encode()
        self.path = path
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self.length = len(self.head) + path.stat().st_size + len(self.tail)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        with open(self.path, "rb") as fh:
            while block := fh.read(self.BLOCK):
                yield block
        yield self.tail


# -- the stack and its measurements ----------------------------------------------------------


def batch_worker(env: dict[str, str]):
    """The Procfile's `batch` process: nice 10, BATCH_CONCURRENCY 2, the batches' queue."""
    cmd = [
        "nice",
        "-n",
        "10",
        str(BIN / "celery"),
        "-A",
        "workers.celery_app:app",
        "worker",
        "--concurrency",
        "2",
        "--max-tasks-per-child",
        "1000",
        "--queues",
        f"{env['DEFAULT_QUEUE']}.batches",
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "--hostname",
        "batch@bench",
    ]
    return process(cmd, env, "batch")


class RssSampler(threading.Thread):
    """The peak RSS of every process under each root (a process group the stack started), per
    phase: the main process and each pool child or web worker separately."""

    def __init__(self, roots: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.roots = roots
        self.phase = "start-up"
        self.peaks: dict[str, dict[str, dict[str, Any]]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_S):
            phase = self.peaks.setdefault(self.phase, {})
            for role, pid in self.roots.items():
                for proc, kind in _tree(pid):
                    try:
                        rss = proc.memory_info().rss
                    except psutil.Error:
                        continue  # it exited between the listing and the read
                    if not rss:
                        continue  # a zombie: exited, not yet reaped
                    key = f"{role}/{kind}/{proc.pid}"
                    entry = phase.setdefault(key, {"role": role, "kind": kind, "peak_mb": 0.0})
                    entry["peak_mb"] = max(entry["peak_mb"], rss / 2**20)


def _tree(pid: int) -> list[tuple[psutil.Process, str]]:
    try:
        root = psutil.Process(pid)
        children = root.children(recursive=True)
    except psutil.Error:
        return []
    # `nice` execs celery, `python -m web.serve` starts granian's workers: the root is the main
    # process, the rest are its workers.
    return [(root, "main"), *((child, "child") for child in children)]


class LatencyLoop(threading.Thread):
    """One client sending single-row sync predicts back to back, each timed."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.url, self.headers = url, headers
        self.samples: list[float] = []
        self.errors = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                started = time.perf_counter()
                resp = session.post(self.url, json={"inputs": [ROW]}, headers=self.headers)
                elapsed = time.perf_counter() - started
                if resp.status_code == 200:
                    self.samples.append(elapsed * 1000)
                else:
                    self.errors += 1

    def finish(self) -> dict[str, Any]:
        self.stop.set()
        self.join()
        ms = np.asarray(self.samples)
        return {
            "requests": len(ms),
            "errors": self.errors,
            "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max()),
        }


def measure_latency(url: str, headers: dict[str, str], seconds: float) -> dict[str, Any]:
    loop = LatencyLoop(url, headers)
    loop.start()
    time.sleep(seconds)
    return loop.finish()


class Client(Ours):
    """A user of our stack (account, key, uploads) who also submits batches."""

    def model(self, model_id: str) -> dict[str, Any]:
        resp = requests.get(f"{self.api}/models/{model_id}", headers=self.headers, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def submit(self, model_id: str, path: Path) -> str:
        body = MultipartFile(path, {})
        resp = requests.post(
            f"{self.api}/models/{model_id}/batches",
            data=body,
            headers={**self.headers, "Content-Type": body.content_type},
            timeout=600,
        )
        assert resp.status_code == 202, resp.text
        return resp.json()["id"]

    def wait(self, batch_id: str, timeout: float = 1800) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with requests.Session() as session:
            while time.monotonic() < deadline:
                batch = session.get(
                    f"{self.api}/batches/{batch_id}", headers=self.headers, timeout=10
                ).json()
                if batch["status"] not in ("queued", "running"):
                    return batch
                time.sleep(POLL_S)
        raise TimeoutError(batch_id)

    def download(self, batch_id: str, target: Path) -> float:
        started = time.perf_counter()
        with requests.get(
            f"{self.api}/batches/{batch_id}/result", headers=self.headers, stream=True, timeout=60
        ) as resp:
            resp.raise_for_status()
            with open(target, "wb") as fh:
                for block in resp.iter_content(1 << 20):
                    fh.write(block)
        return time.perf_counter() - started


def second_user(base: str, path: Path) -> tuple[str, dict[str, str]]:
    """Another account with a logreg of its own: the single-row predict URL and its headers."""
    other = Client.__new__(Client)
    other.api = f"{base}/api/v1"
    creds = {"email": "other@example.com", "password": "other-password-1"}
    requests.post(f"{other.api}/auth/register", json=creds, timeout=10)
    token = requests.post(f"{other.api}/auth/login", json=creds, timeout=10).json()
    key = requests.post(
        f"{other.api}/api-keys",
        json={"name": "other"},
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=10,
    ).json()["key"]
    other.headers = {"X-API-Key": key}
    model_id = other.upload("other-logreg", path)
    return f"{other.api}/models/{model_id}/predict?timeout=30", other.headers


def stages(env: dict[str, str], batch_id: str) -> dict[str, float]:
    """Seconds between the batch's own timestamps: created (the upload stored and checked) ->
    started (planning wrote the rows file) -> last chunk done -> finished (result written)."""
    engine = create_engine(env["DATABASE_URL"])
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT EXTRACT(EPOCH FROM b.started_at - b.created_at) AS plan,"
                " EXTRACT(EPOCH FROM max(c.updated_at) - b.started_at) AS chunks,"
                " EXTRACT(EPOCH FROM b.finished_at - max(c.updated_at)) AS result"
                " FROM batches b JOIN batch_chunks c ON c.batch_id = b.id"
                " WHERE b.id = :id GROUP BY b.id"
            ),
            {"id": batch_id},
        ).one()
    engine.dispose()
    return {"plan_s": float(row.plan), "chunks_s": float(row.chunks), "result_s": float(row.result)}


def run_batch(
    client: Client,
    env: dict[str, str],
    model_id: str,
    path: Path,
    other: tuple[str, dict[str, str]] | None,
) -> dict[str, Any]:
    """One batch from the upload's first byte to `succeeded`, with the other user's loop
    running throughout when `other` is given."""
    loop = LatencyLoop(*other) if other else None
    if loop:
        loop.start()
    started = time.perf_counter()
    batch_id = client.submit(model_id, path)
    uploaded = time.perf_counter() - started
    batch = client.wait(batch_id)
    elapsed = time.perf_counter() - started
    latency = loop.finish() if loop else None
    assert batch["status"] == "succeeded", batch
    return {
        "batch_id": batch_id,
        "rows": batch["rows_total"],
        "bytes": path.stat().st_size,
        "seconds": elapsed,
        "rows_per_s": batch["rows_total"] / elapsed,
        "upload_s": uploaded,
        **stages(env, batch_id),
        "latency_during": latency,
    }


def check_result(client: Client, batch_id: str, fmt: str, expected: np.ndarray) -> dict:
    """Download the result and compare every prediction with raw predict's."""
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / f"result.{fmt}"
        seconds = client.download(batch_id, target)
        if fmt == "parquet":
            table = pq.read_table(target)
        else:  # an all-empty column would be read as nulls
            types = pacsv.ConvertOptions(column_types={"error": pa.string()})
            table = pacsv.read_csv(target, convert_options=types)
        got = table.column("prediction").to_numpy()
        failed = int((table.column("error").to_numpy(zero_copy_only=False) != "").sum())
    return {
        "download_s": seconds,
        "mismatches": int((got != expected).sum()) if len(got) == len(expected) else -1,
        "failed_rows": failed,
    }


# -- the in-process baselines ----------------------------------------------------------------


def timed(work: Any) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def raw_predict(model: Any, rows: np.ndarray) -> float:
    """Rows/s of one predict() over all rows, warmed on a slice, the median of RAW_RUNS."""
    model.predict(rows[:1000])
    return len(rows) / median_by(
        [timed(lambda: model.predict(rows)) for _ in range(RAW_RUNS)], float
    )


def raw_onnx(env: dict[str, str], model_id: str, rows: np.ndarray) -> float | None:
    """Rows/s of the service's own compiled graph through the workers' OnnxRuntime (one
    thread) over all rows at once: the forest as the service serves single rows."""
    from workers.runtimes.onnx import OnnxRuntime

    engine = create_engine(env["DATABASE_URL"])
    with engine.connect() as conn:
        key = conn.execute(
            text("SELECT onnx_key FROM models WHERE id = :id"), {"id": model_id}
        ).scalar()
    engine.dispose()
    if not key:
        return None
    runtime = OnnxRuntime.load(Path(env["MODEL_STORE_DIR"]) / key)
    runtime.predict(rows[:1000])
    return len(rows) / timed(lambda: runtime.predict(rows))


def raw_script(model: Any, csv_path: Path, folder: Path) -> float:
    """Rows/s of a one-process script doing the batch's work: read the CSV (pyarrow, typed as
    numbers), predict, write the predictions as a CSV."""

    def work() -> int:
        table = pacsv.read_csv(csv_path)
        rows = np.column_stack([c.to_numpy() for c in table.columns])
        labels = model.predict(rows)
        pacsv.write_csv(pa.table({"prediction": labels}), folder / "script-out.csv")
        return len(rows)

    started = time.perf_counter()
    n = work()
    return n / (time.perf_counter() - started)


def profile_stages(model: Any, input_schema: dict, csv_path: Path, chunk_rows: int) -> dict:
    """The batch's stages on `csv_path` in this one process, through shared/batches/ and the
    chunk's output builder: planning (CSV -> rows file), then per chunk reading its row group,
    converting its cells, predicting, building and writing its part; the result (CSV)."""
    from shared.batches import cells, files
    from shared.store import LocalArtifactStore
    from workers.batches import chunks

    out = dict.fromkeys(STAGES, 0.0)
    with tempfile.TemporaryDirectory() as folder:
        store = LocalArtifactStore(Path(folder))
        batch = str(uuid.uuid4())
        rows_file = Path(folder) / "rows.parquet"
        started = time.perf_counter()
        counts = files.write_rows_file(csv_path, "csv", rows_file, chunk_rows)
        out["plan"] = time.perf_counter() - started
        claim = chunks.Claim(1, None, [], False, _output_schema(model))  # type: ignore[arg-type]
        parts = []
        for index in range(len(counts)):
            clock = time.perf_counter()
            rows = files.read_chunk(rows_file, index)
            clock = _lap(out, "read", clock)
            converted = cells.convert(rows, input_schema)
            clock = _lap(out, "convert", clock)
            labels = np.asarray(model.predict(converted.model_input)).tolist()
            clock = _lap(out, "predict", clock)
            answers = chunks.Answers(labels, None, np.full(len(labels), "", dtype=object))
            # the worker's own output builder (private: the bench times the code it runs)
            table = chunks._output(rows, claim, (converted.valid, answers), converted.errors)
            clock = _lap(out, "output", clock)
            key = files.part_key(batch, index, 1)
            files.write_part(table, store, key)
            parts.append(store.local_path(key))
            _lap(out, "part", clock)
        clock = time.perf_counter()
        files.write_result(parts, "csv", store, files.result_key(batch, "csv"))
        _lap(out, "result", clock)
    out["total"] = sum(out.values())
    out["rows"] = sum(counts)
    return out


def _lap(out: dict[str, float], stage: str, since: float) -> float:
    now = time.perf_counter()
    out[stage] += now - since
    return now


def _output_schema(model: Any) -> dict[str, Any]:
    return {"task": "classification", "classes": np.asarray(model.classes_).tolist()}


# -- the run -------------------------------------------------------------------------------


def run(rows: int, big_rows: int, idle_seconds: float) -> dict:
    models = fit_models()
    data = Path(tempfile.mkdtemp(prefix="mlsp-bench-batches-"))
    out: dict[str, Any] = {
        "rows": rows,
        "big_rows": big_rows,
        "load_average_start": os.getloadavg(),
        "runs": {},
        "raw": {},
        "profile": {},
    }
    try:
        paths = {name: data / f"{name}.joblib" for name in models}
        for name, model in models.items():
            joblib.dump(model, paths[name])
        clock = time.perf_counter()
        files = write_files(data, rows, seed=3, parquet=True)
        say(f"files of {rows:,} rows written in {time.perf_counter() - clock:.1f} s")
        matrix = read_matrix(files["parquet"])
        with ExitStack() as stack:
            env = bench_env(services(stack), stack)
            env["MAX_BATCH_MB"] = "8192"
            stack.callback(shutil.rmtree, env["MODEL_STORE_DIR"], True)
            port = free_port()
            roots = {
                "web": stack.enter_context(web_server(port, env, name="web-batches")).pid,
                "worker": stack.enter_context(celery_worker(env, "worker-batches")).pid,
                "batch": stack.enter_context(batch_worker(env)).pid,
            }
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/api/v1/health/live")
            sampler = RssSampler(roots)
            sampler.start()
            client = Client(base)
            ids = {name: client.upload(name, paths[name]) for name in models}
            other = second_user(base, paths["logreg"])
            measure_latency(*other, 2)  # warm the job worker's children
            warm = write_files(data, 60_000, seed=4, parquet=False)["csv"]
            for name in models:  # each batch child loads both models before the clock runs
                for _ in range(2):
                    run_batch(client, env, ids[name], warm, None)
            for name, model in models.items():
                out["runs"][name] = {}
                out["raw"][name] = measure_raw(env, ids[name], model, matrix, files, data)
                say(name, "raw", out["raw"][name])
                expected = model.predict(matrix)
                for fmt in ("csv", "parquet"):
                    sampler.phase = f"{name}-{fmt}-{rows}"
                    # alone (its throughput), then with the other user's loop (its latency)
                    alone = run_batch(client, env, ids[name], files[fmt], None)
                    idle = measure_latency(*other, idle_seconds)
                    res = run_batch(client, env, ids[name], files[fmt], other)
                    res["latency_idle"] = idle
                    res["alone"] = {k: v for k, v in alone.items() if k != "latency_during"}
                    res["check"] = check_result(client, res["batch_id"], fmt, expected)
                    res["load_average"] = os.getloadavg()
                    out["runs"][name][fmt] = res
                    say(name, fmt, res)
                schema = client.model(ids[name])["input_schema"]
                sampler.phase = "profile"
                out["profile"][name] = profile_stages(model, schema, files["csv"], 20_000)
                say(name, "profile", out["profile"][name])
            if big_rows:
                out["big"] = big_run(client, env, ids["forest"], data, big_rows, sampler, other)
            sampler.phase = "end"
            sampler.stop.set()
            sampler.join()
            out["rss"] = sampler.peaks
    finally:
        shutil.rmtree(data, ignore_errors=True)
    out["load_average_end"] = os.getloadavg()
    return out


def measure_raw(
    env: dict[str, str], model_id: str, model: Any, matrix: np.ndarray, files: dict, folder: Path
) -> dict[str, Any]:
    return {
        "predict_rows_per_s": raw_predict(model, matrix),
        "onnx_rows_per_s": raw_onnx(env, model_id, matrix),
        "script_rows_per_s": raw_script(model, files["csv"], folder),
    }


def big_run(
    client: Client,
    env: dict[str, str],
    model_id: str,
    folder: Path,
    rows: int,
    sampler: RssSampler,
    other: tuple[str, dict[str, str]],
) -> dict[str, Any]:
    """The memory figure: a --big-rows CSV through the forest, its result downloaded."""
    clock = time.perf_counter()
    path = write_files(folder, rows, seed=5, parquet=False)["csv"]
    size_mb = path.stat().st_size / 2**20
    say(f"{rows:,}-row CSV ({size_mb:,.0f} MB) in {time.perf_counter() - clock:.1f} s")
    sampler.phase = f"forest-csv-{rows}"
    res = run_batch(client, env, model_id, path, other)
    with tempfile.TemporaryDirectory() as target:
        res["download_s"] = client.download(res["batch_id"], Path(target) / "result.csv")
    res["load_average"] = os.getloadavg()
    path.unlink()
    say("big", res)
    return res


# -- the report ------------------------------------------------------------------------------


def _line(label: str, *cells: str) -> str:
    return f"{label:50}" + "".join(f"{c:>18}" for c in cells)


def table(res: dict) -> str:
    """Ours against each baseline (ratio = ours / baseline), then where the time went, the other
    user's latency, the check against raw predict, and the peak RSS of every process."""
    lines = [_line("measure", "ours", "baseline", "ratio")]
    for name, runs in res["runs"].items():
        for fmt, run in runs.items():
            lines += _run_lines(f"{name} {fmt} {res['rows']:,} rows", run, res["raw"][name])
        prof = res["profile"][name]
        stages = " / ".join(f"{k} {prof[k]:.2f}" for k in STAGES)
        lines.append(f"  {name} in one process, s: {stages}; total {prof['total']:.2f}")
    if "big" in res:
        big = res["big"]
        label = f"forest csv {res['big_rows']:,} rows: rows/s"
        lines += [_line(label, f"{big['rows_per_s']:,.0f}"), _seconds(big), _latency(big)]
    lines.append("peak RSS (MB) per process, over the whole run:")
    lines += [f"  {key:40} {peak:8.0f}" for key, peak in sorted(_overall_peaks(res["rss"]).items())]
    if "big" in res:
        phase = res["rss"].get(f"forest-csv-{res['big_rows']}", {})
        lines.append(f"peak RSS (MB) during the {res['big_rows']:,}-row batch:")
        lines += [f"  {key:40} {e['peak_mb']:8.0f}" for key, e in sorted(phase.items())]
    lines.append(f"load average: start {res['load_average_start']}, end {res['load_average_end']}")
    return "\n".join(lines)


STAGES = ("plan", "read", "convert", "predict", "output", "part", "result")


def _run_lines(label: str, run: dict, raw: dict) -> list[str]:
    """The batch alone against each baseline, then with the other user's loop running."""
    alone = run.get("alone", run)
    ours = alone["rows_per_s"]
    lines = []
    for what, key in (
        ("raw predict", "predict_rows_per_s"),
        ("raw ONNX, 1 thread", "onnx_rows_per_s"),
        ("one-process script", "script_rows_per_s"),
    ):
        if raw.get(key):
            first = f"{ours:,.0f}" if not lines else ""
            ratio = f"{ours / raw[key]:.3f}"
            lines.append(_line(f"{label}: rows/s / {what}", first, f"{raw[key]:,.0f}", ratio))
    check = run["check"]
    loaded = run["rows_per_s"] / raw["predict_rows_per_s"]
    return [
        *lines,
        _seconds(alone),
        _line(
            "  with the other user's loop: rows/s, / raw",
            f"{run['rows_per_s']:,.0f}",
            "",
            f"{loaded:.3f}",
        ),
        _seconds(run),
        _latency(run),
        _line("  mismatches / failed rows", f"{check['mismatches']} / {check['failed_rows']}"),
    ]


def _seconds(run: dict) -> str:
    return _line(
        "  s: total | upload, plan | chunks, result",
        f"{run['seconds']:.1f}",
        f"{run['upload_s']:.1f}, {run['plan_s']:.1f}",
        f"{run['chunks_s']:.1f}, {run['result_s']:.1f}",
    )


def _latency(run: dict) -> str:
    """The other user's p50 / p99 while the batch ran, idle just before, and the p99 ratio."""
    busy, idle = run["latency_during"], run.get("latency_idle")
    if idle is None:
        return _line("  other user's sync p50 / p99 ms (busy)", _ms(busy))
    ratio = f"{busy['p99_ms'] / idle['p99_ms']:.2f}"
    return _line("  other user's sync p50 / p99 ms (busy, idle)", _ms(busy), _ms(idle), ratio)


def _ms(latency: dict) -> str:
    return f"{latency['p50_ms']:.1f} / {latency['p99_ms']:.1f}"


def _overall_peaks(rss: dict[str, dict[str, dict]]) -> dict[str, float]:
    peaks: dict[str, float] = {}
    for phase, entries in rss.items():
        if phase == "profile":  # the stack idles while this process profiles
            continue
        for key, entry in entries.items():
            peaks[key] = max(peaks.get(key, 0.0), entry["peak_mb"])
    return peaks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the measured files")
    parser.add_argument("--big-rows", type=int, default=5_000_000, help="the memory run (0: none)")
    parser.add_argument("--idle-seconds", type=float, default=5, help="the idle latency loop")
    args = parser.parse_args()
    res = run(args.rows, args.big_rows, args.idle_seconds)
    print(table(res))
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "batches.json").write_text(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
