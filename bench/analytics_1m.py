"""Time GET /models/{id}/analytics's queries on 1,000,000 job rows.

Creates a scratch database on DATABASE_URL's server, migrates it (the real schema and indexes),
loads 1M synthetic jobs with COPY (one hot model with 900k of them over 90 days, 100k spread over
20 other models), VACUUM ANALYZEs as autovacuum would, then times `model_analytics` — exactly
what the endpoint runs — several times per window and prints the p50 against the 200 ms target.
Then the same without the covering index (the 0003 schema) for comparison. Drops the database.

    .venv/bin/python bench/analytics_1m.py [--rows 1000000] [--runs 7]
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import statistics
import sys
import time
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 200
CHUNK = 100_000
HOT_SHARE = 0.9
OTHER_MODELS = 20
WINDOWS = (7, 30, 90)
COLUMNS = (
    "id, model_id, model_version, owner_id, status, inputs, n_rows, result, error_code, "
    "error_message, attempts, runtime, cache_hit, queue_ms, inference_ms, total_ms, "
    "created_at, started_at, finished_at"
)


def scratch_database() -> tuple[str, str]:
    """(server URL on the `postgres` db, scratch db URL) for DATABASE_URL's server."""
    server = make_url(
        os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    server = server.set(drivername="postgresql+psycopg2")
    name = f"mlsp_bench_{secrets.token_hex(4)}"
    render = lambda u: u.render_as_string(hide_password=False)  # noqa: E731
    return render(server.set(database="postgres")), render(server.set(database=name))


def admin(server_url: str, sql: str) -> None:
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


def migrate() -> None:
    from flask_migrate import upgrade

    from web import create_app

    with create_app().app_context():
        upgrade(directory=str(ROOT / "migrations"))


def owner_and_models(conn) -> tuple[uuid.UUID, list[uuid.UUID]]:
    owner = uuid.uuid4()
    conn.execute(
        text("INSERT INTO users (id, email, password_hash) VALUES (:id, :e, 'x')"),
        {"id": owner, "e": f"{owner}@bench"},
    )
    models = [uuid.uuid4() for _ in range(OTHER_MODELS + 1)]
    for i, mid in enumerate(models):
        conn.execute(
            text(
                "INSERT INTO models (id, owner_id, name, version, status, format, artifact_key,"
                " sha256, size_bytes) VALUES (:id, :o, :n, 1, 'ready', 'joblib', 'k', :s, 1)"
            ),
            {"id": mid, "o": owner, "n": f"m{i}", "s": "0" * 64},
        )
    return owner, models


def csv_chunk(rng, n: int, owner: uuid.UUID, models: list[uuid.UUID], now: float) -> io.StringIO:
    """n job rows as CSV: 90 days of history, 5% failed, a few still queued."""
    hot = rng.random(n) < HOT_SHARE
    other = rng.integers(1, len(models), n)
    created = now - rng.random(n) * 90 * 86400
    queue = rng.gamma(1.5, 8, n)
    inference = rng.gamma(2, 2, n)
    roll = rng.random(n)
    hits = rng.random(n) < 0.95
    rows_n = rng.integers(1, 20, n)
    out = io.StringIO()
    for i in range(n):
        model = models[0] if hot[i] else models[other[i]]
        status = "failed" if roll[i] < 0.05 else "queued" if roll[i] > 0.999 else "succeeded"
        out.write(
            _line(
                uuid.uuid4(),
                model,
                owner,
                status,
                rows_n[i],
                hits[i],
                queue[i],
                inference[i],
                created[i],
            )
        )
    out.seek(0)
    return out


def _ts(epoch: float) -> str:
    return (
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1e6):06d}+00"
    )


def _line(jid, model, owner, status, n, hit, queue, inference, created) -> str:
    if status == "queued":
        return (
            f'{jid},{model},1,{owner},queued,"[[5.1, 3.5, 1.4, 0.2]]",{n},,,,0,,,,,,'
            f"{_ts(created)},,\n"
        )
    started = created + queue / 1000
    finished = started + (inference + 1) / 1000
    total = (finished - created) * 1000
    result = '"{""predictions"": [0]}"' if status == "succeeded" else ""
    error = "inference_error,ValueError: synthetic" if status == "failed" else ","
    return (
        f'{jid},{model},1,{owner},{status},"[[5.1, 3.5, 1.4, 0.2]]",{n},{result},{error},1,'
        f"sklearn,{'t' if hit else 'f'},{queue:.3f},{inference:.3f},{total:.3f},"
        f"{_ts(created)},{_ts(started)},{_ts(finished)}\n"
    )


def load(engine, rows: int) -> uuid.UUID:
    rng = np.random.default_rng(0)
    with engine.begin() as conn:
        owner, models = owner_and_models(conn)
    raw = engine.raw_connection()
    started, now = time.perf_counter(), time.time()
    try:
        with raw.cursor() as cur:
            for offset in range(0, rows, CHUNK):
                data = csv_chunk(rng, min(CHUNK, rows - offset), owner, models, now)
                cur.copy_expert(f"COPY jobs ({COLUMNS}) FROM STDIN WITH (FORMAT csv)", data)
        raw.commit()
    finally:
        raw.close()
    print(f"loaded {rows:,} jobs with COPY in {time.perf_counter() - started:.1f}s")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) jobs"))
    return models[0]


def time_windows(engine, model_id: uuid.UUID, runs: int, label: str) -> dict[int, float]:
    from sqlalchemy.orm import Session

    from web.analytics.queries import model_analytics

    results = {}
    for days in WINDOWS:
        times = []
        for _ in range(runs + 1):  # the first run warms the cache and is not counted
            with Session(engine) as session:
                started = time.perf_counter()
                body = model_analytics(session, model_id, days)
                times.append((time.perf_counter() - started) * 1000)
                session.rollback()
        p50 = statistics.median(times[1:])
        results[days] = p50
        verdict = "OK" if p50 <= TARGET_MS else "OVER"
        spread = f"(min {min(times[1:]):.1f}, max {max(times[1:]):.1f})"
        print(
            f"  {label:<22} days={days:<3} jobs={body.total:>8,}  p50 {p50:7.1f} ms  {spread}"
            f"  target {TARGET_MS} ms: {verdict}"
        )
    return results


def plan(engine, model_id: uuid.UUID, days: int) -> str:
    """The summary statement's plan, under the settings the endpoint uses."""
    from sqlalchemy.orm import Session

    from web.analytics.queries import SUMMARY, tune_transaction, window_start

    with Session(engine) as session:
        tune_transaction(session, 60_000)
        params = {"model_id": model_id, "since": window_start(days)}
        rows = session.execute(text("EXPLAIN " + SUMMARY.text), params)
        return "\n".join(r[0] for r in rows)


def without_covering_index(engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("DROP INDEX ix_jobs_model_created_cover"))
        conn.execute(text("CREATE INDEX ix_jobs_model_created ON jobs (model_id, created_at)"))
        conn.execute(text("ANALYZE jobs"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (debug)")
    args = parser.parse_args()
    server_url, db_url = scratch_database()
    os.environ["DATABASE_URL"] = db_url  # read by the app's settings on first use
    os.environ.setdefault("MLSP_ENV", "test")
    sys.path.insert(0, str(ROOT))
    admin(server_url, f'CREATE DATABASE "{make_url(db_url).database}"')
    engine = create_engine(db_url)
    try:
        migrate()
        hot = load(engine, args.rows)
        print("summary plan (7 days):\n  " + plan(engine, hot, 7).replace("\n", "\n  "))
        print(
            f"analytics of the hot model ({HOT_SHARE:.0%} of {args.rows:,} jobs), {args.runs} runs:"
        )
        covered = time_windows(engine, hot, args.runs, "covering index")
        if not args.keep:
            without_covering_index(engine)
            time_windows(engine, hot, args.runs, "(model_id, created_at)")
    finally:
        engine.dispose()
        if args.keep:
            print(f"kept {make_url(db_url).database}")
        else:
            admin(server_url, f'DROP DATABASE IF EXISTS "{make_url(db_url).database}" WITH (FORCE)')
    print(
        f"RESULT: default window (7 days) p50 {covered[7]:.1f} ms against the {TARGET_MS} ms "
        f"target; 30 days {covered[30]:.1f} ms; 90 days {covered[90]:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
