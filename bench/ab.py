"""Two stacks side by side, interleaved: did a change make sync predict slower, and what do the
default settings cost?

    python -m bench.ab <old-rev> [<new-rev>|.] [--rounds 4] [--seconds 6] [--models logreg]
    python -m bench.ab --defaults [<rev>|.] [--models logreg,forest]

Both stacks (web + worker as the Procfile runs them, each from a git worktree of its revision,
each with its own database, Redis prefix and queue) are up at once and measured in alternating
rounds, so that whatever else the machine does weighs on both alike. For single-row sync predict
on 20-feature models it prints, per stack: req/s and p50 at 16 and 1 connections (wrk, median of
the rounds), and CPU milliseconds per request spent by the web processes, the worker processes
and the stack's PostgreSQL backends (from /proc, so a busy machine changes it less than it changes
req/s).

`--defaults` runs one revision three times: tuned as every benchmark runs it (WARNING logs, rate
limits off, a worker without gossip), with the settings a user gets from the README and the
Procfile (INFO request logs, the rate limiter on, the worker's INFO log, gossip and task events,
Flower following them), and tuned again as a control. One exception: the prediction quota is
raised, since one benchmark key stands for many clients (the limiter does the same work per
request at any limit).
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
# --defaults: the tuned stack, the defaults, and the tuned stack again as a control: two stacks
# of the same settings up at once measured 0.83x apart in one run on these machines, so the
# control's ratio says how much of the defaults' is noise.
DEFAULTS_RUN = (("tuned", ""), ("defaults", "defaults"), ("tuned", "control"))
# What the tuned benchmark environment (bench.serving.bench_env) sets that a user's stack does not.
_TUNINGS = ("LOG_LEVEL", "RATE_LIMIT_ENABLED")
_MANY_CLIENTS_QUOTA = "1000000/minute"
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

    def __init__(
        self,
        stack: ExitStack,
        base: dict[str, str],
        rev: str,
        models: dict[str, Path],
        profile: str = "tuned",
        role: str = "",
    ) -> None:
        self.rev = rev
        self.label = f"{rev} {role}".strip()
        tree = worktree(stack, rev)
        st.ROOT = sv.ROOT = tree  # the processes below run (and migrate) from this tree
        self.tree = tree
        self.env = env = profile_env(sv.bench_env(base, stack), profile, tree)
        self.database = make_url(env["DATABASE_URL"]).database
        port = st.free_port()
        name = f"ab-{self.label}".replace(" ", "-")
        defaults = profile == "defaults"
        self.groups = [
            stack.enter_context(st.web_server(port, env, name=f"{name}-web")).pid,
            stack.enter_context(st.celery_worker(env, f"{name}-worker", procfile=defaults)).pid,
        ]
        if defaults:
            flower = st.flower(env, st.free_port(), f"{name}-flower")
            self.groups.append(stack.enter_context(flower).pid)
        st.wait_http(f"http://127.0.0.1:{port}/api/v1/health/live")
        self.ours = sv.Ours(f"http://127.0.0.1:{port}")
        self.model_ids = {model: self.ours.upload(model, path) for model, path in models.items()}
        url = make_url(base["DATABASE_URL"]).set(drivername="postgresql+psycopg2")
        self.admin = create_engine(url, isolation_level="AUTOCOMMIT")
        self.samples: dict[tuple[str, int], list[dict]] = {
            (model, c): [] for model in models for c in CONNECTIONS
        }

    def cpu_ms(self) -> dict[str, float]:
        """CPU time so far of the web and worker process groups (Flower counted with the worker)
        and the database's backends."""
        web, *workers = (_group_ticks(g) for g in self.groups)
        worker = sum(workers)
        with self.admin.connect() as conn:
            pids = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": self.database}
            ).scalars()
            db = sum(_ticks(p) for p in pids)
        return {"web": web * _TICK_MS, "worker": worker * _TICK_MS, "db": db * _TICK_MS}

    def round(self, model: str, connections: int, seconds: int) -> None:
        before = self.cpu_ms()
        res = self.ours.sync(self.model_ids[model], connections, seconds)
        after = self.cpu_ms()
        requests = res["rps"] * seconds
        res["cpu_ms"] = {k: (after[k] - before[k]) / requests for k in before}
        self.samples[model, connections].append(res)


def profile_env(env: dict[str, str], profile: str, tree: Path) -> dict[str, str]:
    """The benchmark's tuned environment, or a user's defaults (see the module's docstring)."""
    env = {**env, "PYTHONPATH": str(tree)}
    if profile == "defaults":
        env = {k: v for k, v in env.items() if k not in _TUNINGS}
        env["RATE_LIMIT_PREDICT"] = _MANY_CLIENTS_QUOTA
    return env


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


def summary(side: Side, model: str, connections: int) -> str:
    runs = side.samples[model, connections]
    rps = statistics.median(r["rps"] for r in runs)
    p50 = statistics.median(r["p50_ms"] for r in runs)
    cpu = {k: statistics.median(r["cpu_ms"][k] for r in runs) for k in ("web", "worker", "db")}
    each = " ".join(f"{r['rps']:.0f}" for r in runs)
    return (
        f"{side.label:>21} {model:>6} c={connections:<2} {rps:7.0f} req/s ({each})  "
        f"p50 {p50:5.2f} ms  "
        f"CPU/req web {cpu['web']:.2f} worker {cpu['worker']:.2f} db {cpu['db']:.2f} ms"
    )


def ratio(first: Side, second: Side, model: str, connections: int) -> str:
    """The second stack's req/s over the first's: of the medians, and round by round (the two
    stacks' measurements of one round were taken back to back)."""
    a, b = first.samples[model, connections], second.samples[model, connections]
    rounds = " ".join(f"{y['rps'] / x['rps']:.2f}" for x, y in zip(a, b, strict=True))
    median = statistics.median(r["rps"] for r in b) / statistics.median(r["rps"] for r in a)
    return f"{second.label} / {first.label} {model} c={connections}: {median:.2f} (rounds {rounds})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", nargs="?", default=".")
    parser.add_argument("new", nargs="?", default=".")
    parser.add_argument("--defaults", action="store_true", help="OLD tuned against OLD defaults")
    parser.add_argument("--models", help="logreg, forest or both (default logreg; --defaults both)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=6)
    args = parser.parse_args()
    names = (args.models or ("logreg,forest" if args.defaults else "logreg")).split(",")
    fitted = sv.fit_models()
    folder = Path(tempfile.mkdtemp(prefix="mlsp-ab-model-"))
    models = {name: folder / f"{name}.joblib" for name in names}
    for name, path in models.items():
        joblib.dump(fitted[name], path)
    if args.defaults:
        stacks = [(args.old, profile, role) for profile, role in DEFAULTS_RUN]
    else:
        stacks = [(args.old, "tuned", ""), (args.new, "tuned", "")]
    with ExitStack() as stack:
        base = sv.services(stack)
        sides = [Side(stack, base, rev, models, profile, role) for rev, profile, role in stacks]
        for side in sides:  # warm: caches, connections, the first model loads
            for model_id in side.model_ids.values():
                side.ours.sync(model_id, 16, 3)
        for i in range(args.rounds):
            for side in sides if i % 2 == 0 else sides[::-1]:
                for name in names:
                    for c in CONNECTIONS:
                        side.round(name, c, args.seconds)
        for name in names:
            for c in CONNECTIONS:
                for side in sides:
                    print(summary(side, name, c))
                for side in sides[1:]:
                    print(ratio(sides[0], side, name, c))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
