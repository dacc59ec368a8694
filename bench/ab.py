"""Two revisions of the service side by side, interleaved: did a change make sync predict slower?

    python -m bench.ab <old-rev> [<new-rev>|.] [--rounds 4] [--seconds 6]

Both stacks (web + worker as the Procfile runs them, each from a git worktree of its revision,
each with its own database, Redis prefix and queue) are up at once and measured in alternating
rounds, so that whatever else the machine does weighs on both alike. For single-row sync predict
on a 20-feature LogisticRegression it prints, per revision: req/s and p50 at 16 and 1 connections
(wrk, median of the rounds), and CPU milliseconds per request spent by the web processes, the
worker processes and the stack's PostgreSQL backends (from /proc, so a busy machine changes it
less than it changes req/s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from contextlib import ExitStack
from pathlib import Path

import joblib
from sqlalchemy import create_engine, make_url, text

import bench.serving as sv
import bench.stack as st

CONNECTIONS = (16, 1)
CHECKOUT = st.ROOT
_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def worktree(stack: ExitStack, rev: str) -> Path:
    if rev == ".":
        return CHECKOUT
    path = Path(tempfile.mkdtemp(prefix="mlsp-ab-")) / "tree"
    git = ["git", "-C", str(CHECKOUT)]
    subprocess.run([*git, "worktree", "add", "--detach", str(path), rev], check=True)
    stack.callback(subprocess.run, [*git, "worktree", "remove", "--force", str(path)])
    return path


class Side:
    """One revision's stack: its processes' groups and its database, for CPU accounting."""

    def __init__(self, stack: ExitStack, base: dict[str, str], rev: str, model: Path) -> None:
        self.rev = rev
        tree = worktree(stack, rev)
        st.ROOT = sv.ROOT = tree  # the processes below run (and migrate) from this tree
        self.tree = tree
        self.env = env = {**sv.bench_env(base, stack), "PYTHONPATH": str(tree)}
        self.database = make_url(env["DATABASE_URL"]).database
        port = st.free_port()
        self.groups = [
            stack.enter_context(st.web_server(port, env, name=f"ab-web-{rev}")).pid,
            stack.enter_context(st.celery_worker(env, f"ab-worker-{rev}")).pid,
        ]
        st.wait_http(f"http://127.0.0.1:{port}/api/v1/health/live")
        self.ours = sv.Ours(f"http://127.0.0.1:{port}")
        self.model_id = self.ours.upload("logreg", model)
        url = make_url(base["DATABASE_URL"]).set(drivername="postgresql+psycopg2")
        self.admin = create_engine(url, isolation_level="AUTOCOMMIT")
        self.samples: dict[int, list[dict]] = {c: [] for c in CONNECTIONS}

    def cpu_ms(self) -> dict[str, float]:
        """CPU time so far of the web and worker process groups and the database's backends."""
        web, worker = (_group_ticks(g) for g in self.groups)
        with self.admin.connect() as conn:
            pids = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": self.database}
            ).scalars()
            db = sum(_ticks(p) for p in pids)
        return {"web": web * _TICK_MS, "worker": worker * _TICK_MS, "db": db * _TICK_MS}

    def round(self, connections: int, seconds: int) -> None:
        before = self.cpu_ms()
        res = self.ours.sync(self.model_id, connections, seconds)
        after = self.cpu_ms()
        requests = res["rps"] * seconds
        res["cpu_ms"] = {k: (after[k] - before[k]) / requests for k in before}
        self.samples[connections].append(res)


def _ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime


def _group_ticks(pgid: int) -> int:
    total = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[2]) == pgid:
                total += int(fields[11]) + int(fields[12])
    return total


def summary(side: Side, connections: int) -> str:
    runs = side.samples[connections]
    rps = statistics.median(r["rps"] for r in runs)
    p50 = statistics.median(r["p50_ms"] for r in runs)
    cpu = {k: statistics.median(r["cpu_ms"][k] for r in runs) for k in ("web", "worker", "db")}
    each = " ".join(f"{r['rps']:.0f}" for r in runs)
    return (
        f"{side.rev:>12} c={connections:<2} {rps:7.0f} req/s ({each})  p50 {p50:5.2f} ms  "
        f"CPU/req web {cpu['web']:.2f} worker {cpu['worker']:.2f} db {cpu['db']:.2f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new", nargs="?", default=".")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=6)
    args = parser.parse_args()
    model = Path(tempfile.mkdtemp(prefix="mlsp-ab-model-")) / "logreg.joblib"
    joblib.dump(sv.fit_models()["logreg"], model)
    with ExitStack() as stack:
        base = sv.services(stack)
        sides = [Side(stack, base, rev, model) for rev in (args.old, args.new)]
        for side in sides:  # warm: caches, connections, the first model load
            side.ours.sync(side.model_id, 16, 3)
        for i in range(args.rounds):
            for side in sides if i % 2 == 0 else sides[::-1]:
                for c in CONNECTIONS:
                    side.round(c, args.seconds)
        for c in CONNECTIONS:
            for side in sides:
                print(summary(side, c))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
