"""Start and stop the processes a benchmark measures, and drive wrk against them."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


@contextmanager
def process(cmd: list[str], env: dict[str, str], log_name: str):
    """A child in its own process group, stopped with SIGTERM (then SIGKILL) on exit."""
    log = open(Path(tempfile.gettempdir()) / f"mlsp-bench-{log_name}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def gunicorn(app: str, port: int, env: dict[str, str], *, name: str):
    """The baseline's server: gunicorn with 2 sync workers, as the issue defines it."""
    cmd = [
        str(BIN / "gunicorn"),
        "--workers",
        "2",
        "--bind",
        f"127.0.0.1:{port}",
        "--timeout",
        "120",
        "--log-level",
        "warning",
    ]
    return process([*cmd, app], env, name)


def web_server(port: int, env: dict[str, str], name: str):
    """Our web process as the Procfile runs it (web/serve.py: granian, 2 x 16 threads)."""
    env = {
        **env,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "WEB_THREADS": "16",
    }
    return process([str(BIN / "python"), "-m", "web.serve"], env, name)


def celery_worker(env: dict[str, str], name: str, concurrency: int = 2, *, procfile: bool = False):
    """A job worker on the stack's queue; tuned (WARNING logs, no gossip or mingle) unless
    `procfile`, which runs it with the Procfile's flags (INFO logs, gossip and mingle on)."""
    cmd = [
        str(BIN / "celery"),
        "-A",
        "workers.celery_app:app",
        "worker",
        "--concurrency",
        str(concurrency),
        "--queues",
        env["DEFAULT_QUEUE"],
        "--hostname",
        f"{name}@bench",
    ]
    if procfile:
        cmd += ["--loglevel", "INFO", "--max-tasks-per-child", "1000", "-E"]
    else:
        cmd += ["--loglevel", "WARNING", "--without-gossip", "--without-mingle"]
    return process(cmd, env, name)


def flower(env: dict[str, str], port: int, name: str):
    """Flower as the Procfile runs it, following the stack's task events (in memory)."""
    cmd = [str(BIN / "python"), "-m", "workers.flower", f"--port={port}", "--address=127.0.0.1"]
    return process(cmd, env, name)


# A sync predict that could not wait (the caller's or the server's cap on waiting requests,
# web/waits.py) answers 202 with a queued job: 2xx to wrk, but not an answered prediction. Every
# script counts them (each wrk thread has its own Lua state; `done` sums them), and a run with
# more than 1 % of them measures nothing (_parse_wrk).
_WRK_ACCEPTED = """
accepted = 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body)
  if status == 202 then accepted = accepted + 1 end
end
function done(summary, latency, requests)
  local n = 0
  for _, thread in ipairs(threads) do n = n + (thread:get("accepted") or 0) end
  io.write(string.format("Accepted 202: %d\\n", n))
end
"""

_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [==[%s]==]
wrk.headers["Content-Type"] = "application/json"
%s
""" + _WRK_ACCEPTED.replace("%", "%%")


def wrk(
    url: str,
    body: dict,
    connections: int,
    seconds: int,
    headers: dict | None = None,
    *,
    answered: bool = True,
) -> dict:
    """req/s, p50 and p99 (ms) of a POST loop; non-2xx answers are counted as errors, and so are
    202s when the route should have `answered` (a sync predict; not a job submission)."""
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT % (json.dumps(body), lines))
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(min(connections, 2)),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            script.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)
    return _parse_wrk(out, answered)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _parse_wrk(out: str, answered: bool = True) -> dict:
    accepted = re.search(r"Accepted 202: (\d+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    if answered and accepted and int(accepted.group(1)) > total // 100:
        raise RuntimeError(
            f"{accepted.group(1)} of {total} answers were 202 (not waited on):\n{out}"
        )
    if "Non-2xx" in out and "Requests/sec" in out:
        bad = int(re.search(r"Non-2xx or 3xx responses: (\d+)", out).group(1))
        total = int(re.search(r"(\d+) requests in", out).group(1))
        if bad > total // 100:  # a run of errors measures nothing
            raise RuntimeError(f"{bad} of {total} answers were errors:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = {p: _ms(v, u) for p, v, u in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)", out)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50_ms": pct.get("50"),
        "p99_ms": pct.get("99"),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


_WRK_SPREAD = """
local paths = {%s}
local cumulative = {%s}
local body = [==[%s]==]
local headers = {["Content-Type"] = "application/json", %s}

function init(args)
  -- each wrk thread has its own Lua state: seed each differently
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%%x+)") or "0", 16) %% 1000003)
end

function request()
  local r, lo, hi = math.random(), 1, #cumulative
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cumulative[mid] < r then lo = mid + 1 else hi = mid end
  end
  return wrk.format("POST", paths[lo], headers, body)
end
""" + _WRK_ACCEPTED.replace("%", "%%")


def wrk_script(
    base: str,
    paths: list[str],
    weights: list[float],
    body: dict,
    connections: int,
    seconds: int,
    headers: dict | None = None,
) -> dict:
    """`wrk` over several paths: each request POSTs `body` to a path drawn by `weights`."""
    total, running, cumulative = sum(weights), 0.0, []
    for weight in weights:
        running += weight / total
        cumulative.append(running)
    cumulative[-1] = 1.0
    script = _WRK_SPREAD % (
        ", ".join(json.dumps(p) for p in paths),
        ", ".join(f"{c:.12f}" for c in cumulative),
        json.dumps(body),
        ", ".join(f'["{k}"] = "{v}"' for k, v in (headers or {}).items()),
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    cmd = ["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{seconds}s"]
    out = subprocess.run(
        [*cmd, "--latency", "-s", fh.name, base], capture_output=True, text=True, check=True
    ).stdout
    os.unlink(fh.name)
    return _parse_wrk(out)
