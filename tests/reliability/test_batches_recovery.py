"""The promise of batches: a batch answered with 202 is in PostgreSQL, and whatever fails in
between (a worker killed mid-chunk, a Redis restart, a chunk that kills its worker every time)
it finishes with every input row exactly once, in order; cancel stops it between chunks; an
over-size file or a user over their quota is refused with nothing stored. Real processes
throughout, on queues of their own (tests.fixtures.services.isolated); each test bounded in time.
"""

from __future__ import annotations

import io
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sqlalchemy import func, select, text, update

from shared.batches import Batch, BatchChunk
from shared.celery_config import BATCH_CHUNK, create_producer
from shared.config import Settings, get_settings
from shared.db import session_scope
from tests.conftest import store_dir
from tests.fixtures.models import (
    FEATURES,
    fit_classifier,
    insert_ready_model,
    iris,
)
from tests.fixtures.services import free_port, isolated
from tests.reliability.test_recovery import FAST_RECOVERY, private_redis
from workers.batches import plan

pytestmark = pytest.mark.e2e

CHUNK = 200  # rows per chunk (BATCH_CHUNK_ROWS of the isolated stacks)
# The reaper waits for a queued batch item this long past its last send (the planning task's
# time limit plus a minute): a test that lost its messages moves the clocks back past it.
AN_HOUR_AGO = timedelta(hours=1)


def _slow_forest() -> RandomForestClassifier:
    """~0.3 s per chunk whatever its rows: slow enough for a kill or a cancel to land mid-run."""
    x, y = iris()
    frame = pd.DataFrame(x, columns=FEATURES)
    return RandomForestClassifier(n_estimators=800, max_depth=5, random_state=0).fit(frame, y)


@pytest.fixture(scope="module")
def forest() -> RandomForestClassifier:
    return _slow_forest()


def _frame(n: int) -> pd.DataFrame:
    """n iris-like rows with an `id` column, so the result's order and count can be checked."""
    rng = np.random.default_rng(n)
    x, _ = iris()
    rows = x[rng.integers(0, len(x), n)] + rng.normal(0, 0.3, (n, 4))
    frame = pd.DataFrame(rows.round(3), columns=FEATURES)
    frame.insert(0, "id", [f"r{i:06d}" for i in range(n)])
    return frame


def _post_batch(client, account, model_id: str, data, **fields):
    form = {"file": (data, "rows.csv"), **{k: str(v) for k, v in fields.items()}}
    return client.post(
        f"/api/v1/models/{model_id}/batches",
        data=form,
        headers=account.headers,
        content_type="multipart/form-data",
    )


def _submit(client, account, model_id: str, frame: pd.DataFrame) -> str:
    data = io.BytesIO(frame.to_csv(index=False).encode())
    resp = _post_batch(client, account, model_id, data, keep_columns="id")
    assert resp.status_code == 202, resp.json
    return resp.json["id"]


def _wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def _batch(batch_id: str) -> Batch:
    with session_scope() as s:
        batch = s.get(Batch, uuid.UUID(batch_id))
        s.expunge(batch)
        return batch


def _chunks(batch_id: str) -> list[BatchChunk]:
    with session_scope() as s:
        rows = list(
            s.scalars(
                select(BatchChunk)
                .where(BatchChunk.batch_id == uuid.UUID(batch_id))
                .order_by(BatchChunk.index)
            )
        )
        s.expunge_all()
        return rows


def _final(batch_id: str, timeout: float) -> Batch:
    _wait_until(lambda: _batch(batch_id).status not in ("queued", "running"), timeout, 0.2)
    return _batch(batch_id)


def _result(client, account, batch_id: str) -> pd.DataFrame:
    resp = client.get(f"/api/v1/batches/{batch_id}/result", headers=account.headers)
    assert resp.status_code == 200, resp.json
    return pd.read_csv(io.BytesIO(resp.data), keep_default_na=False, na_values=[""])


def _assert_every_row_once(result: pd.DataFrame, frame: pd.DataFrame, model) -> None:
    assert result["id"].tolist() == frame["id"].tolist()  # each row once, in input order
    assert result["prediction"].tolist() == model.predict(frame[FEATURES]).tolist()
    assert result["error"].isna().all()  # an empty cell: no row failed


def _stored_files(batch_id: str) -> set[str]:
    return {p.name for p in store_dir().iterdir() if p.name.startswith(batch_id)}


def _backdate(batch_id: str) -> None:
    """Move the batch's and its chunks' clocks an hour back: their messages look long lost."""
    with session_scope() as s:
        s.execute(
            update(Batch)
            .where(Batch.id == uuid.UUID(batch_id))
            .values(
                created_at=Batch.created_at - AN_HOUR_AGO,
                enqueued_at=func.now() - AN_HOUR_AGO,
            )
        )
        s.execute(
            update(BatchChunk)
            .where(BatchChunk.batch_id == uuid.UUID(batch_id))
            .values(updated_at=func.now() - AN_HOUR_AGO)
        )


@pytest.fixture
def planned_here(monkeypatch) -> Callable[[str], list[int]]:
    """Plan a batch in this process, in chunks of CHUNK rows, sending no chunk message: the
    state a batch is in when its chunks' messages were lost (a Redis restart after planning)."""
    monkeypatch.setattr(get_settings(), "batch_chunk_rows", CHUNK)
    return lambda batch_id: plan.plan_batch(uuid.UUID(batch_id))


def test_kill9_mid_batch_every_row_exactly_once(user, forest, tmp_path):
    model_id = insert_ready_model(user, forest, tmp_path)
    stack = isolated(BATCH_CHUNK_ROWS=CHUNK, **FAST_RECOVERY)
    frame = _frame(10 * CHUNK)
    batch_id = _submit(stack.client, user, model_id, frame)

    def mid_chunk() -> bool:
        """A chunk claimed moments ago (so still predicting) after one done: one child, one
        message at a time, so no message is held unclaimed (it would wait out the broker's
        visibility timeout, not the reaper)."""
        with session_scope() as s:
            return bool(
                s.scalar(
                    text(
                        "SELECT count(*) FILTER (WHERE status = 'done') >= 1 AND count(*)"
                        " FILTER (WHERE status = 'running' AND updated_at > now() - interval"
                        " '100 milliseconds') = 1 FROM batch_chunks WHERE batch_id = :b"
                    ),
                    {"b": batch_id},
                )
            )

    with stack.beat(), stack.worker(name="reaper"):  # the reaper runs throughout
        with stack.batch_worker(concurrency=1, name="doomed") as doomed:
            assert _wait_until(mid_chunk, 40, 0.02), _chunks(batch_id)
            os.killpg(doomed.pid, signal.SIGKILL)  # main process and every child at once
            doomed.wait()
        at_kill = _chunks(batch_id)
        killed = {c.index for c in at_kill if c.status == "running"}
        assert len(killed) == 1, [(c.index, c.status) for c in at_kill]
        started = time.monotonic()
        with stack.batch_worker(concurrency=2, name="restarted"):
            done = _final(batch_id, 50)
    assert done.status == "succeeded", (done.status, done.error)
    assert (done.rows_total, done.rows_done, done.rows_failed) == (len(frame), len(frame), 0)
    _assert_every_row_once(_result(stack.client, user, batch_id), frame, forest)
    chunks = _chunks(batch_id)
    assert all(c.status == "done" for c in chunks)
    assert sum(c.row_count for c in chunks) == len(frame)
    assert killed <= {c.index for c in chunks if c.attempts > 1}  # the killed chunk re-ran
    # Every part (of every attempt) and the rows file are gone: the input and the result stay.
    assert _stored_files(batch_id) == {done.input_key, done.output_key}
    print(f"kill -9 in chunk {killed}; finished {time.monotonic() - started:.1f} s after")


def test_messages_lost_in_a_redis_restart_are_sent_again(user, forest, tmp_path, planned_here):
    """One batch lost its planning message, another its chunks' messages: the reaper sends them
    again from what PostgreSQL holds, and both finish."""
    model_id = insert_ready_model(user, forest, tmp_path)
    port = free_port()
    stack = isolated(
        REDIS_URL=f"redis://127.0.0.1:{port}/0", BATCH_CHUNK_ROWS=CHUNK, **FAST_RECOVERY
    )
    frames = [_frame(3 * CHUNK + 17), _frame(4 * CHUNK)]
    with private_redis(port):
        unplanned, unsent = (_submit(stack.client, user, model_id, f) for f in frames)
    # Redis came back empty: both planning messages are gone. One batch is planned here, its
    # chunk messages never sent (as if lost after planning).
    assert planned_here(unsent) == [0, 1, 2, 3]
    for batch_id in (unplanned, unsent):
        _backdate(batch_id)
    with private_redis(port) as fresh:
        with stack.beat(), stack.worker(name="reaper"), stack.batch_worker():
            done = [_final(batch_id, 40) for batch_id in (unplanned, unsent)]
        assert fresh.poll() is None
        for batch, frame in zip(done, frames, strict=True):
            assert batch.status == "succeeded", (batch.status, batch.error)
            assert batch.rows_done == len(frame)
            _assert_every_row_once(_result(stack.client, user, str(batch.id)), frame, forest)
    # (A chunk may also run twice here: one past the short TASK_TIME_LIMIT_S on a loaded machine
    # is re-sent; its first run's write is fenced out, as the counts above show.)
    assert all(c.status == "done" and c.attempts >= 1 for c in _chunks(unsent))


def test_cancel_stops_between_chunks(user, forest, tmp_path):
    model_id = insert_ready_model(user, forest, tmp_path)
    stack = isolated(BATCH_CHUNK_ROWS=CHUNK)
    # 40 chunks: on a quiet machine a chunk takes ~15 ms, and with 10 the last 8 once finished
    # between the poll that saw 2 done and the cancel (409 batch_finished).
    batch_id = _submit(stack.client, user, model_id, _frame(40 * CHUNK))
    url = f"/api/v1/batches/{batch_id}"
    with stack.batch_worker(concurrency=1):
        assert _wait_until(lambda: _batch(batch_id).chunks_done >= 2, 40)
        resp = stack.client.delete(url, headers=user.headers)
        assert resp.status_code == 200, resp.json
        assert resp.json["status"] == "cancelled" and resp.json["finished_at"]
        time.sleep(0.3)  # a claim that read the batch before the cancel committed is over
        claimed = {c.index: c.attempts for c in _chunks(batch_id) if c.attempts}
        # Long enough for several more chunks: none may be claimed.
        assert not _wait_until(
            lambda: {c.index: c.attempts for c in _chunks(batch_id) if c.attempts} != claimed, 3
        )
        assert not any(c.status == "running" for c in _chunks(batch_id))  # the last one ended
    chunks = _chunks(batch_id)
    assert len(claimed) < len(chunks)
    assert all(c.status == "queued" and not c.attempts for c in chunks if c.index not in claimed)
    batch = _batch(batch_id)
    assert batch.status == "cancelled" and batch.output_key is None
    result = stack.client.get(f"{url}/result", headers=user.headers)
    assert result.status_code == 409
    assert result.json["error"]["code"] == "batch_not_finished"
    again = stack.client.delete(url, headers=user.headers)
    assert again.status_code == 409 and again.json["error"]["code"] == "batch_finished"


class _Rows(io.RawIOBase):
    """A CSV file of `size` bytes made on the fly (never whole in memory)."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.line = b"5.1,3.5,1.4,0.2\n"
        self.head = (",".join(FEATURES) + "\n").encode()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        block = self.head + self.line * (n // len(self.line) + 1)
        self.head = b""
        buffer[:n] = block[:n]
        self.left -= n
        return n


def _peak_rss_during(work: Callable[[], object]) -> tuple[object, int]:
    """`work`'s answer and how far this process's RSS rose above its start while it ran."""
    page = os.sysconf("SC_PAGE_SIZE")

    def rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * page

    base, peak, running = rss(), [0], True

    def sample() -> None:
        while running:
            peak[0] = max(peak[0], rss())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        answer = work()
    finally:
        running = False
        sampler.join()
    return answer, max(peak[0], rss()) - base


def _store_listing() -> set[str]:
    return {p.name for p in store_dir().iterdir()}


@pytest.mark.parametrize(
    ("max_mb", "size_mb"),
    [
        (50, 200),  # the declared length is over the limit: refused before reading the body
        (0.05, 0.5),  # within the form's allowance: refused while the file is being stored
    ],
)
def test_over_size_is_413_with_nothing_stored(user, tmp_path, max_mb, size_mb):
    model_id = insert_ready_model(user, fit_classifier(), tmp_path)
    stack = isolated(MAX_BATCH_MB=max_mb)
    before = _store_listing()
    size = int(size_mb * 1024 * 1024)
    resp, grown = _peak_rss_during(
        lambda: _post_batch(stack.client, user, model_id, io.BufferedReader(_Rows(size)))
    )
    assert resp.status_code == 413, resp.json
    assert resp.json["error"]["code"] == "payload_too_large"
    assert grown < 40 * 1024 * 1024, f"RSS rose {grown / 2**20:.0f} MB for a {size_mb} MB file"
    assert _store_listing() == before  # no input, no temporary file left
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Batch)) == 0


def test_quota_of_active_batches_is_429(user, forest, tmp_path):
    model_id = insert_ready_model(user, forest, tmp_path)
    stack = isolated(MAX_ACTIVE_BATCHES_PER_USER=1)  # no batch worker: the first stays queued
    frame = _frame(10)
    first = _submit(stack.client, user, model_id, frame)
    over = _post_batch(stack.client, user, model_id, io.BytesIO(frame.to_csv(index=False).encode()))
    assert over.status_code == 429, over.json
    assert over.json["error"]["code"] == "too_many_batches"
    assert int(over.headers["Retry-After"]) >= 1
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Batch)) == 1  # nothing of the refused
    assert stack.client.delete(f"/api/v1/batches/{first}", headers=user.headers).status_code == 200
    _submit(stack.client, user, model_id, frame)  # a finished batch frees its place


def test_a_chunk_that_killed_its_workers_fails_its_rows(user, forest, tmp_path, planned_here):
    """A chunk claimed JOB_MAX_ATTEMPTS times already (its worker died each time) is not
    predicted again: its rows fail as worker_lost, the others are predicted, the batch ends
    partial."""
    model_id = insert_ready_model(user, forest, tmp_path)
    stack = isolated(BATCH_CHUNK_ROWS=CHUNK, JOB_MAX_ATTEMPTS=2)
    frame = _frame(3 * CHUNK)
    batch_id = _submit(stack.client, user, model_id, frame)
    # Planned here (its planning message is left in the queue: it finds the batch planned).
    assert planned_here(batch_id) == [0, 1, 2]
    with session_scope() as s:
        s.execute(
            text("UPDATE batch_chunks SET attempts = 2 WHERE batch_id = :b AND index = 1"),
            {"b": batch_id},
        )
    producer = create_producer(Settings(**stack.env))
    for index in range(3):
        producer.send_task(BATCH_CHUNK, args=[batch_id, index], queue=f"{stack.name}.batches")
    with stack.batch_worker():
        done = _final(batch_id, 40)
    assert done.status == "partial", (done.status, done.error)
    assert (done.rows_done, done.rows_failed) == (len(frame), CHUNK)
    result = _result(stack.client, user, batch_id)
    assert result["id"].tolist() == frame["id"].tolist()
    poisoned = slice(CHUNK, 2 * CHUNK)
    assert result["error"][poisoned].str.startswith("worker_lost: ").all()
    assert result["prediction"][poisoned].isna().all()
    rest = np.r_[0:CHUNK, 2 * CHUNK : 3 * CHUNK]
    expected = forest.predict(frame[FEATURES].iloc[rest])
    assert result["prediction"].iloc[rest].astype(int).tolist() == expected.tolist()
    assert [c.attempts for c in _chunks(batch_id)] == [1, 3, 1]
    assert _stored_files(batch_id) == {done.input_key, done.output_key}
