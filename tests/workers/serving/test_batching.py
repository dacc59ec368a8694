"""The drain loop (workers/serving/batching.py) against a real Redis: what a batch takes, and the
straggler wait that BATCH_MAX_WAIT_MS turns on (off by default)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy.exc import OperationalError

from shared import queueing
from shared.config import Settings, get_settings
from shared.redis_client import get_redis
from shared.signals import done_commands, reply_key
from workers.serving import batching


def _settings(**overrides: float) -> Settings:
    # No linger: the drain returns as soon as the list is empty.
    return get_settings().model_copy(update={"drain_linger_ms": 0, **overrides})


@pytest.fixture
def model_id():
    model = str(uuid.uuid4())
    yield model
    get_redis().delete(queueing.pending_key(model), queueing.wake_key(model, 0))


def _push(model_id: str, *entries: str) -> None:
    get_redis().rpush(queueing.pending_key(model_id), *entries)


def _drain(model_id: str, settings: Settings, on_batch: Callable[[], None] = lambda: None):
    """The batches a drain predicted, each a list of entries, and its report. Each batch signals
    done:job:<entry> for each of its entries, as the prediction pipeline does."""
    batches: list[list[str]] = []

    def run_batch(_model: str, entries: list[str], _epoch: bytes, signals: list) -> None:
        batches.append(entries)
        signals += done_commands("job", entries)
        on_batch()

    report = batching.drain(
        get_redis(),
        settings,
        model_id,
        0,
        f"t-{uuid.uuid4().hex}",
        hand_off=lambda: None,
        run_batch=run_batch,
    )
    return batches, report


def test_a_batch_takes_what_waits_and_the_next_one_what_came_meanwhile(model_id):
    _push(model_id, "a", "b", "c")
    arrived = []

    def one_more_while_predicting() -> None:
        if not arrived:
            arrived.append(True)
            _push(model_id, "d")

    batches, report = _drain(model_id, _settings(), one_more_while_predicting)
    assert batches == [["a", "b", "c"], ["d"]]
    assert (report.batches, report.jobs) == (2, 4)
    assert not get_redis().llen(queueing.pending_key(model_id))


def test_batch_max_jobs_caps_a_batch(model_id):
    _push(model_id, *"abcde")
    batches, _ = _drain(model_id, _settings(batch_max_jobs=2))
    assert batches == [["a", "b"], ["c", "d"], ["e"]]


def _late_push(model_id: str, entry: str, after_s: float) -> threading.Thread:
    thread = threading.Timer(after_s, _push, args=(model_id, entry))
    thread.start()
    return thread


def test_without_a_straggler_wait_a_late_job_is_not_waited_for(model_id):
    _push(model_id, "a", "b")
    late = _late_push(model_id, "c", 0.3)
    batches, _ = _drain(model_id, _settings(batch_max_wait_ms=0))
    late.join()
    assert batches == [["a", "b"]]  # drained and done before "c" came
    assert get_redis().lrange(queueing.pending_key(model_id), 0, -1) == [b"c"]


def test_straggler_wait_lets_a_late_job_join_the_batch(model_id):
    _push(model_id, "a", "b")
    late = _late_push(model_id, "c", 0.05)
    batches, _ = _drain(model_id, _settings(batch_max_wait_ms=300))
    late.join()
    assert batches == [["a", "b", "c"]]


def test_a_lone_job_is_not_made_to_wait_for_company(model_id):
    _push(model_id, "a")
    started = time.monotonic()
    batches, _ = _drain(model_id, _settings(batch_max_wait_ms=2000))
    assert batches == [["a"]]
    assert time.monotonic() - started < 1


def test_a_batch_signals_its_waiters_with_the_next_lease_and_after_the_last(model_id):
    _push(model_id, "a", "b", "c")
    keys = [reply_key("job", e) for e in "abc"]
    get_redis().delete(*keys)
    seen_after_first: list[int] = []

    def check() -> None:  # while the second batch runs, the first one's signals are out
        if len(seen_after_first) == 0:
            seen_after_first.append(0)
            return
        seen_after_first.append(int(get_redis().exists(*keys[:2])))

    batches, _ = _drain(model_id, _settings(batch_max_jobs=2), check)
    assert batches == [["a", "b"], ["c"]]
    assert seen_after_first == [0, 2]
    assert get_redis().exists(*keys) == 3  # the last batch's went with the final (empty) lease
    assert all(0 < get_redis().ttl(k) <= 300 for k in keys)
    get_redis().delete(*keys)


def test_an_outage_mid_batch_still_signals_what_it_wrote_and_puts_its_lease_back(model_id):
    _push(model_id, "a", "b")

    def run_batch(_model: str, entries: list[str], _epoch: bytes, signals: list) -> None:
        signals += done_commands("job", entries[:1])  # "a" was written, then the database went
        raise OperationalError("UPDATE", {}, Exception("server closed the connection"))

    with pytest.raises(OperationalError):
        batching.drain(
            get_redis(), _settings(), model_id, 0, "t-fail", lambda: None, run_batch=run_batch
        )
    assert get_redis().lpop(reply_key("job", "a")) == b"1"
    assert get_redis().lrange(queueing.pending_key(model_id), 0, -1) == [b"a", b"b"]
    get_redis().delete(reply_key("job", "a"))


def test_a_batch_that_raises_is_split_and_its_culprit_set_aside_not_retried(model_id):
    """Issue 18: an entry that makes every batch raise once wedged its model's list for good
    (back at the head each time). Now its batch's entries run alone and the culprit alone is
    set aside; the drain goes on with the rest."""
    _push(model_id, "a", "poison", "b", "c")
    batches, aside = [], []

    def run_batch(_model: str, entries: list[str], _epoch: bytes, signals: list) -> None:
        batches.append(entries)
        if "poison" in entries:
            raise ValueError("cannot process")

    def recover(key: str) -> queueing.Recovered:
        got = queueing.recover_lease(get_redis(), key)
        aside.extend(got.set_aside)
        return got

    report = batching.drain(
        get_redis(),
        _settings(batch_max_jobs=3),
        model_id,
        0,
        "t-split",
        lambda: None,
        recover,
        run_batch=run_batch,
    )
    assert batches == [["a", "poison", "b"], ["a"], ["poison"], ["b"], ["c"]]
    assert aside == ["poison"] and report.batches == 3
    assert not get_redis().llen(queueing.pending_key(model_id))


def test_the_linger_holds_the_process_only_while_no_other_task_waits_for_it(model_id):
    """An empty list makes a drainer linger DRAIN_LINGER_MS for its model's next job, unless
    other tasks (other models' wake-ups) wait in the broker queue: then the process is theirs,
    and a job arriving during what would have been the linger is left to a new wake-up."""
    queue = f"linger-test-{uuid.uuid4().hex[:8]}"
    settings = _settings(drain_linger_ms=1500, default_queue=queue)
    _push(model_id, "a")
    late = _late_push(model_id, "b", 0.3)
    batches, _ = _drain(model_id, settings)
    late.join()
    assert batches == [["a"], ["b"]]  # nothing else waited: it lingered and took b

    get_redis().rpush(queue, "another model's wake-up")
    try:
        _push(model_id, "c")
        late = _late_push(model_id, "d", 0.3)
        started = time.monotonic()
        batches, _ = _drain(model_id, settings)
        late.join()
        assert batches == [["c"]] and time.monotonic() - started < 1.0
        assert get_redis().lrange(queueing.pending_key(model_id), 0, -1) == [b"d"]
    finally:
        get_redis().delete(queue)
