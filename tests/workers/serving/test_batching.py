"""The drain loop (workers/serving/batching.py) against a real Redis: what a batch takes, the
turns it takes over users and models, the linger, and the straggler wait that BATCH_MAX_WAIT_MS
turns on (off by default)."""

from __future__ import annotations

import dataclasses
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
from workers.celery_app import app as celery_app
from workers.serving import batching

OWNER = "owner-a"


def _settings(**overrides: float) -> Settings:
    # No linger: the drain returns as soon as the ring is empty.
    return get_settings().model_copy(update={"drain_linger_ms": 0, **overrides})


@pytest.fixture
def route() -> queueing.Route:
    """Drain tasks the pushes send go to a broker queue nothing consumes."""
    queue = f"batching-test-{uuid.uuid4().hex[:8]}"
    yield queueing.Route.from_settings(
        celery_app, get_settings().model_copy(update={"default_queue": queue})
    )
    get_redis().delete(queue)


@pytest.fixture
def model_id() -> str:
    return str(uuid.uuid4())


def _push(route: queueing.Route, model_id: str, *entries: str, owner: str = OWNER) -> None:
    queueing.push_jobs(get_redis(), route, model_id, list(entries), owner=owner)


Groups = list[tuple[str, list[str]]]


def _drain(
    route: queueing.Route,
    settings: Settings,
    on_batch: Callable[[Groups], None] = lambda _groups: None,
    token: str | None = None,
):
    """The batches a drain predicted, each a list of (model, entries), and its report. Each
    batch signals done:job:<entry> for each of its entries, as the prediction pipeline does."""
    batches: list[Groups] = []

    def run_batch(groups: Groups, _epoch: bytes, signals: list) -> None:
        batches.append(groups)
        signals += done_commands("job", [e for _, entries in groups for e in entries])
        on_batch(groups)

    report = batching.drain(
        get_redis(),
        settings,
        dataclasses.replace(route, batch_size=settings.batch_max_jobs),
        token or f"t-{uuid.uuid4().hex}",
        run_batch=run_batch,
    )
    return batches, report


def _entries(batches: list[Groups]) -> list[list[str]]:
    return [[e for _, entries in groups for e in entries] for groups in batches]


def test_a_batch_takes_what_waits_and_the_next_one_what_came_meanwhile(route, model_id):
    _push(route, model_id, "a", "b", "c")
    arrived = []

    def one_more_while_predicting(_groups: Groups) -> None:
        if not arrived:
            arrived.append(True)
            _push(route, model_id, "d")

    batches, report = _drain(route, _settings(), one_more_while_predicting)
    assert batches == [[(model_id, ["a", "b", "c"])], [(model_id, ["d"])]]
    assert (report.batches, report.jobs, report.models) == (2, 4, {model_id})
    assert not get_redis().llen(queueing.pending_key(model_id))
    assert not get_redis().exists(route.key("ring"), route.key(f"sched:{model_id}"))


def test_batch_max_jobs_caps_a_batch(route, model_id):
    _push(route, model_id, *"abcde")
    batches, _ = _drain(route, _settings(batch_max_jobs=2))
    assert _entries(batches) == [["a", "b"], ["c", "d"], ["e"]]


def test_users_take_turns_a_batch_each_whatever_their_backlog(route):
    """Round robin over users, then over each user's models: a flood of one user's jobs gets
    its turn with everyone else who waits, not the pool until it is drained; a batch short of
    BATCH_MAX_JOBS goes on to the next in turn."""
    settings = _settings(batch_max_jobs=2)
    flood, quiet, other = (str(uuid.uuid4()) for _ in range(3))
    _push(route, flood, *(f"f{i}" for i in range(10)), owner="flooder")
    _push(route, quiet, "q0", owner="quiet")
    _push(route, other, "o0", "o1", "o2", owner="other")
    batches, _ = _drain(route, settings)
    assert _entries(batches) == [
        ["f0", "f1"],
        ["q0", "o0"],
        ["f2", "f3"],
        ["o1", "o2"],
        ["f4", "f5"],
        ["f6", "f7"],
        ["f8", "f9"],
    ]


def test_one_users_models_take_turns_too(route):
    models = [str(uuid.uuid4()) for _ in range(3)]
    for i, model in enumerate(models):
        _push(route, model, *(f"m{i}-{j}" for j in range(3)))
    batches, _ = _drain(route, _settings(batch_max_jobs=2))
    assert [m for groups in batches for m, _ in groups] == models + models
    assert sorted(e for batch in _entries(batches) for e in batch) == sorted(
        f"m{i}-{j}" for i in range(3) for j in range(3)
    )


def test_an_owner_at_its_cap_is_passed_over_for_the_next(route):
    """With one drainer per owner (the cap), a second drainer does not take another batch of an
    owner whose batch is running: it takes the next owner's, and the first owner's next batch
    waits for a drainer to come back."""
    capped = queueing.Route(route.producer, route.queue, batch_size=1, owner_cap=1)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    _push(capped, a, "a0", "a1", owner="A")
    _push(capped, b, "b0", owner="B")
    first = queueing.take(get_redis(), capped, "drainer-1")
    second = queueing.take(get_redis(), capped, "drainer-2")
    third = queueing.take(get_redis(), capped, "drainer-3")
    assert (first.groups[0].owner, first.entries) == ("A", ["a0"])
    assert (second.groups[0].owner, second.entries) == ("B", ["b0"])
    assert third.entries == []  # only A has work, and A's one drainer is busy
    after = queueing.take(get_redis(), capped, "drainer-1", first)
    assert (after.groups[0].owner, after.entries) == ("A", ["a1"])


def test_many_models_with_a_job_each_make_one_batch(route):
    models = [str(uuid.uuid4()) for _ in range(5)]
    for i, model in enumerate(models):
        _push(route, model, f"j{i}", owner=f"user-{i % 2}")
    batches, report = _drain(route, _settings(batch_max_jobs=4))
    assert [len(groups) for groups in batches] == [4, 1]
    assert sorted(e for batch in _entries(batches) for e in batch) == [f"j{i}" for i in range(5)]
    assert report.models == set(models)


def _late_push(route: queueing.Route, model_id: str, entry: str, after_s: float):
    thread = threading.Timer(after_s, _push, args=(route, model_id, entry))
    thread.start()
    return thread


def test_without_a_straggler_wait_a_late_job_is_not_waited_for(route, model_id):
    _push(route, model_id, "a", "b")
    late = _late_push(route, model_id, "c", 0.3)
    batches, _ = _drain(route, _settings(batch_max_wait_ms=0))
    late.join()
    assert _entries(batches) == [["a", "b"]]  # drained and done before "c" came
    assert get_redis().lrange(queueing.pending_key(model_id), 0, -1) == [b"c"]


def test_straggler_wait_lets_a_late_job_join_the_batch(route, model_id):
    _push(route, model_id, "a", "b")
    late = _late_push(route, model_id, "c", 0.05)
    batches, _ = _drain(route, _settings(batch_max_wait_ms=300))
    late.join()
    assert _entries(batches) == [["a", "b", "c"]]


def test_a_lone_job_is_not_made_to_wait_for_company(route, model_id):
    _push(route, model_id, "a")
    started = time.monotonic()
    batches, _ = _drain(route, _settings(batch_max_wait_ms=2000))
    assert _entries(batches) == [["a"]]
    assert time.monotonic() - started < 1


def test_a_batch_signals_its_waiters_with_the_next_take_and_after_the_last(route, model_id):
    _push(route, model_id, "a", "b", "c")
    keys = [reply_key("job", e) for e in "abc"]
    seen_after_first: list[int] = []

    def check(_groups: Groups) -> None:
        # While the second batch runs, the first one's signals are out.
        if len(seen_after_first) == 0:
            seen_after_first.append(0)
            return
        seen_after_first.append(int(get_redis().exists(*keys[:2])))

    batches, _ = _drain(route, _settings(batch_max_jobs=2), check)
    assert _entries(batches) == [["a", "b"], ["c"]]
    assert seen_after_first == [0, 2]
    assert get_redis().exists(*keys) == 3  # the last batch's went with the final (empty) take
    assert all(0 < get_redis().ttl(k) <= 300 for k in keys)


def test_an_outage_mid_batch_still_signals_what_it_wrote_and_puts_its_lease_back(route, model_id):
    _push(route, model_id, "a", "b")

    def run_batch(groups: Groups, _epoch: bytes, signals: list) -> None:
        signals += done_commands("job", groups[0][1][:1])  # "a" was written, then the database went
        raise OperationalError("UPDATE", {}, Exception("server closed the connection"))

    with pytest.raises(OperationalError):
        batching.drain(get_redis(), _settings(), route, "t-fail", run_batch=run_batch)
    assert get_redis().lpop(reply_key("job", "a")) == b"1"
    assert get_redis().lrange(queueing.pending_key(model_id), 0, -1) == [b"a", b"b"]
    # Back in its owner's turn, and the task no longer counts as busy for the owner.
    assert get_redis().lrange(route.key(f"ready:{OWNER}"), 0, -1) == [model_id.encode()]
    assert get_redis().zscore(route.key(f"busy:{OWNER}"), "t-fail") is None


def test_a_batch_that_raises_is_split_and_its_culprit_set_aside_not_retried(route, model_id):
    """Issue 18: an entry that makes every batch raise once wedged its model's list for good
    (back at the head each time). Now its batch's entries run alone and the culprit alone is
    set aside; the drain goes on with the rest."""
    _push(route, model_id, "a", "poison", "b", "c")
    batches, aside = [], []

    def run_batch(groups: Groups, _epoch: bytes, signals: list) -> None:
        entries = [e for _, group in groups for e in group]
        batches.append(entries)
        if "poison" in entries:
            raise ValueError("cannot process")

    def recover(key: str) -> queueing.Recovered:
        got = queueing.recover_lease(get_redis(), route, key)
        aside.extend(got.set_aside)
        return got

    route = dataclasses.replace(route, batch_size=3)
    report = batching.drain(
        get_redis(), _settings(batch_max_jobs=3), route, "t-split", recover, run_batch=run_batch
    )
    assert batches == [["a", "poison", "b"], ["a"], ["poison"], ["b"], ["c"]]
    assert aside == ["poison"] and report.batches == 3
    assert not get_redis().llen(queueing.pending_key(model_id))


def test_the_linger_holds_the_process_only_while_no_other_task_waits_for_it(route, model_id):
    """An empty ring makes a drainer linger DRAIN_LINGER_MS for a push's bell, for any model,
    unless other tasks wait in the broker queue: then the process is theirs, and a job arriving
    during what would have been the linger is left to a new drain task."""
    settings = _settings(drain_linger_ms=1500)
    other = str(uuid.uuid4())
    _push(route, model_id, "a")
    get_redis().delete(route.queue)  # the drain task that push sent: this drain plays it
    late = _late_push(route, other, "b", 0.3)
    token = f"t-{uuid.uuid4().hex}"
    batches, _ = _drain(route, settings, token=token)
    late.join()
    assert batches == [[(model_id, ["a"])], [(other, ["b"])]]  # it lingered, took b's model
    assert get_redis().zscore(route.key("drainers"), token) is None  # then left
    assert not get_redis().llen(route.queue)  # b's push rang the bell: no task sent

    get_redis().rpush(route.queue, "another task")
    try:
        _push(route, model_id, "c")
        late = _late_push(route, model_id, "d", 0.3)
        started = time.monotonic()
        batches, _ = _drain(route, settings)
        late.join()
        assert _entries(batches) == [["c"]] and time.monotonic() - started < 1.0
        assert get_redis().lrange(queueing.pending_key(model_id), 0, -1) == [b"d"]
    finally:
        get_redis().delete(route.queue)
