"""The push script against a real Redis: capacity and cache-epoch checks, when a push sends a
drain task, and the pipelined wait of a sync prediction (push and BLPOP in one round trip)."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from shared import cache_epoch, queueing
from shared.cache_epoch import Stale
from shared.config import get_settings
from shared.redis_client import client_for, get_redis
from shared.signals import reply_key
from workers.celery_app import app as celery_app


@pytest.fixture
def route() -> Iterator[queueing.Route]:
    """Wake-ups go to a broker queue of this test's own, which nothing consumes: its length
    counts the drain tasks sent."""
    route = queueing.Route(celery_app, f"wake-test-{uuid.uuid4().hex[:8]}")
    yield route
    get_redis().delete(route.queue)


@pytest.fixture
def blocking():
    """The kind of client push_and_wait needs: its socket timeout outlasts a long BLPOP."""
    return client_for(get_settings().redis_url, blocking=True)


def _answer_next(model_id: str, reply: str, payload: bytes) -> threading.Thread:
    """A stand-in drainer: take the next entry of the model's list and reply to it."""

    def work() -> None:
        redis = get_redis()
        assert redis.blpop([queueing.pending_key(model_id)], timeout=5) is not None
        redis.rpush(reply, payload)

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def _sent_wakes(route: queueing.Route) -> int:
    return int(get_redis().llen(route.queue))


def test_reply_arrives_whether_or_not_a_drainer_had_to_be_woken(route, blocking):
    model_id, reply = str(uuid.uuid4()), reply_key("job", uuid.uuid4())
    worker = _answer_next(model_id, reply, b"first")
    got = queueing.push_and_wait(blocking, route, model_id, "entry-1", reply, 5)
    worker.join()
    assert got == b"first"
    assert _sent_wakes(route) == 1  # the flag was free: a drain task went out before the wait

    reply2 = reply_key("job", uuid.uuid4())
    worker = _answer_next(model_id, reply2, b"second")
    got = queueing.push_and_wait(blocking, route, model_id, "entry-2", reply2, 5)
    worker.join()
    assert got == b"second"
    assert _sent_wakes(route) == 1  # the flag is held: no second task
    assert not get_redis().exists(reply, reply2)  # no marker left behind


def test_full_queue_pushes_nothing_and_returns_at_once(route, blocking):
    model_id, reply = str(uuid.uuid4()), reply_key("job", uuid.uuid4())
    queueing.push_jobs(get_redis(), route, model_id, ["already-waiting"])
    started = time.monotonic()
    with pytest.raises(queueing.QueueFull) as full:
        queueing.push_and_wait(blocking, route, model_id, "entry", reply, 10, max_depth=1)
    assert time.monotonic() - started < 2  # the marker ended the pipelined wait
    assert full.value.depth == 1
    assert get_redis().lrange(queueing.pending_key(model_id), 0, -1) == [b"already-waiting"]
    assert not get_redis().exists(reply)


def test_moved_epoch_pushes_nothing_and_names_the_current_one(route, blocking):
    model_id, reply = str(uuid.uuid4()), reply_key("job", uuid.uuid4())
    now = cache_epoch.bump(get_redis())
    started = time.monotonic()
    with pytest.raises(Stale) as stale:
        queueing.push_and_wait(blocking, route, model_id, "entry", reply, 10, expect_epoch=b"0")
    assert time.monotonic() - started < 2
    assert stale.value.epoch == now == cache_epoch.read(get_redis())
    assert queueing.queue_depth(get_redis(), model_id) == 0
    assert _sent_wakes(route) == 0 and not get_redis().exists(reply)
    with pytest.raises(Stale):
        queueing.push_jobs(get_redis(), route, model_id, ["entry"], expect_epoch=b"0")
    assert queueing.push_jobs(get_redis(), route, model_id, ["entry"], expect_epoch=now) == 1


def test_epoch_check_passes_before_the_first_bump(route, blocking):
    """No bump yet: the key is missing and reads as b"", which a request may have assumed."""
    model_id = str(uuid.uuid4())
    assert queueing.push_jobs(get_redis(), route, model_id, ["entry"], expect_epoch=b"") == 1


def test_no_time_left_pushes_without_waiting(route, blocking):
    model_id, reply = str(uuid.uuid4()), reply_key("job", uuid.uuid4())
    assert queueing.push_and_wait(blocking, route, model_id, "entry", reply, 0) is None
    assert queueing.queue_depth(get_redis(), model_id) == 1


def test_timeout_without_reply_returns_none(route, blocking):
    model_id, reply = str(uuid.uuid4()), reply_key("job", uuid.uuid4())
    started = time.monotonic()
    assert queueing.push_and_wait(blocking, route, model_id, "entry", reply, 0.3) is None
    assert 0.25 < time.monotonic() - started < 3
    assert queueing.queue_depth(get_redis(), model_id) == 1  # still queued, for a later drainer


def test_many_models_send_no_more_drain_tasks_than_the_pool_has_processes(route):
    """Fifty models with one job each: two drain tasks (the pool's size until workers register
    theirs), not fifty; they serve every model in turn."""
    for _ in range(50):
        queueing.push_jobs(get_redis(), route, str(uuid.uuid4()), ["entry"], owner=uuid.uuid4().hex)
    assert _sent_wakes(route) == route.pool == 2
    assert get_redis().zcard(route.key("drainers")) == 2
    assert get_redis().llen(route.key("ring")) == 50


def test_registered_workers_set_the_pool_size(route):
    client = get_redis()
    assert queueing.register_capacity(client, route.queue, "host-a", 3) == 3
    assert queueing.register_capacity(client, route.queue, "host-b", 2) == 5
    for _ in range(8):
        queueing.push_jobs(client, route, str(uuid.uuid4()), ["entry"], owner=uuid.uuid4().hex)
    assert _sent_wakes(route) == 5
    assert queueing.register_capacity(client, route.queue, "host-a", 0) == 2


def test_a_lingering_drainer_is_rung_for_instead_of_a_new_task(route):
    client = get_redis()
    assert queueing.take(client, route, "idle-drainer", mode="linger").entries == []
    queueing.push_jobs(client, route, str(uuid.uuid4()), ["entry"], owner="someone")
    assert _sent_wakes(route) == 0
    assert queueing.wait_and_take(client, route, "idle-drainer", 1).entries == ["entry"]
    started = time.monotonic()
    assert queueing.wait_and_take(client, route, "idle-drainer", 0.2).entries == []
    assert time.monotonic() - started >= 0.15  # nothing rang: the wait ran its course


def test_no_drain_task_for_an_owner_whose_drainers_are_at_its_cap(route):
    client = get_redis()
    capped = dataclasses.replace(route, owner_cap=1, batch_size=1)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    queueing.push_jobs(client, capped, first, ["a", "b"], owner="A")
    client.delete(route.queue, route.key("drainers"))  # the task it sent: this test plays it
    assert queueing.take(client, capped, "busy-drainer").entries == ["a"]
    queueing.push_jobs(client, capped, second, ["c"], owner="A")
    assert _sent_wakes(route) == 0  # A's drainer takes it after its batch
    queueing.push_jobs(client, capped, str(uuid.uuid4()), ["d"], owner="B")
    assert _sent_wakes(route) == 1  # B is not at its cap


def test_wait_survives_a_flushed_script_cache(route, blocking):
    """After a Redis restart or SCRIPT FLUSH the push script is reloaded and the entry pushed
    once: the failed EVALSHA's BLPOP, blocked behind it, is dropped with its connection."""
    get_redis().script_flush()
    model_id, reply = str(uuid.uuid4()), reply_key("job", uuid.uuid4())
    worker = _answer_next(model_id, reply, b"answer")
    started = time.monotonic()
    assert queueing.push_and_wait(blocking, route, model_id, "entry", reply, 10) == b"answer"
    worker.join()
    assert time.monotonic() - started < 5
    assert queueing.queue_depth(get_redis(), model_id) == 0  # pushed once, taken once


def test_script_error_surfaces_at_once_and_the_pool_stays_usable(route, blocking):
    model_id, reply = str(uuid.uuid4()), reply_key("job", uuid.uuid4())
    get_redis().set(queueing.pending_key(model_id), "not a list")  # LLEN fails in the script
    started = time.monotonic()
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        queueing.push_and_wait(blocking, route, model_id, "entry", reply, 10)
    assert time.monotonic() - started < 2  # not the BLPOP's 10 s
    get_redis().delete(queueing.pending_key(model_id))
    worker = _answer_next(model_id, reply, b"after")
    assert queueing.push_and_wait(blocking, route, model_id, "entry", reply, 5) == b"after"
    worker.join()


def test_lease_cycle_moves_ids_and_registers_their_lease(route):
    """A drainer's round trips: take, top up, finish and take the next, finish with nothing
    left. Every id is in exactly one place at any time (the pending list or this task's lease)."""
    client, model_id, token = get_redis(), str(uuid.uuid4()), uuid.uuid4().hex
    lease = queueing.lease_key(model_id, token)
    narrow = dataclasses.replace(route, batch_size=1)
    queueing.push_jobs(client, narrow, model_id, ["a", "b", "c", "d"], owner="o")
    batch = queueing.take(client, narrow, token)
    assert batch.groups == [queueing.Group(model_id, "o", ["a"])]
    assert queueing.lease_more(client, narrow, batch.groups[0], token, 1) == ["b"]
    assert client.lrange(lease, 0, -1) == [b"a", b"b"] and client.zscore(queueing.LEASES, lease)
    assert queueing.leases_of(client, token) == [lease]

    batch = queueing.take(client, narrow, token, batch)  # a and b are written: dropped
    assert batch.entries == ["c"] and client.lrange(lease, 0, -1) == [b"c"]
    batch = queueing.take(client, narrow, token, batch)
    assert batch.entries == ["d"]
    assert queueing.take(client, narrow, token, batch).entries == []
    assert client.zscore(queueing.LEASES, lease) is None and not client.exists(lease)
    assert not client.exists(route.key(f"sched:{model_id}"), route.key("ring"))


def test_a_dead_drainers_lease_goes_back_to_the_head_in_order(route):
    client, model_id, token = get_redis(), str(uuid.uuid4()), uuid.uuid4().hex
    lease = queueing.lease_key(model_id, token)
    narrow = dataclasses.replace(route, batch_size=2)
    queueing.push_jobs(client, narrow, model_id, ["a", "b", "c"], owner="o")
    assert queueing.take(client, narrow, token).entries == ["a", "b"]
    assert lease not in queueing.dead_leases(client, 60)  # still young: left alone
    client.zadd(queueing.LEASES, {lease: time.time() - 120})
    assert lease in queueing.dead_leases(client, 60)
    got = queueing.recover_lease(client, route, lease)
    assert (got.cause, got.set_aside, got.requeued) == ("lost", [], ["a", "b"])
    # Back at the head in order, each marked to run alone next time.
    assert client.lrange(queueing.pending_key(model_id), 0, -1) == [b"!a", b"!b", b"c"]
    assert not client.exists(lease) and client.zscore(queueing.LEASES, lease) is None
    client.script_flush()  # the scripts reload themselves after a Redis restart
    batch = queueing.take(client, dataclasses.replace(route, batch_size=3), token)
    assert batch.entries == ["!a"]  # alone
    assert queueing.restore_lease(client, route, lease) == 1
    assert queueing.queue_depth(client, model_id) == 3


def test_one_owners_backlog_is_counted_across_models_as_entries_come_and_go(route):
    client, models = get_redis(), [str(uuid.uuid4()) for _ in range(2)]
    narrow = dataclasses.replace(route, batch_size=1)
    queueing.push_jobs(client, narrow, models[0], ["a", "b"], owner="o", max_backlog=3)
    queueing.push_jobs(client, narrow, models[1], ["c"], owner="o", max_backlog=3)
    with pytest.raises(queueing.BacklogFull) as full:
        queueing.push_jobs(client, narrow, models[1], ["d"], owner="o", max_backlog=3)
    assert full.value.queued == 3
    with pytest.raises(queueing.BacklogFull):
        queueing.admit(client, narrow, models[1], owner="o", max_backlog=3)
    queueing.push_jobs(client, narrow, models[1], ["x"], owner="p", max_backlog=3)  # not o's
    batch = queueing.take(client, narrow, "drainer")  # one of o's (or p's) entries leaves
    assert batch.entries
    queueing.take(client, narrow, "drainer", batch)  # and a second one
    assert int(client.get(route.key("backlog:o"))) + int(client.get(route.key("backlog:p"))) == 2
    queueing.restore_lease(client, narrow, queueing.lease_key(batch.groups[0].model_id, "drainer"))
    pending = sum(queueing.queue_depth(client, m) for m in models)
    counted = int(client.get(route.key("backlog:o"))) + int(client.get(route.key("backlog:p")))
    assert counted == pending


def test_the_reaper_sends_a_drainer_for_work_no_drainer_took(route):
    client, model_id = get_redis(), str(uuid.uuid4())
    queueing.push_jobs(client, route, model_id, ["a"], owner="o")
    assert _sent_wakes(route) == 1
    assert not queueing.ensure_drainer(client, route, 30)  # the one sent is recent
    client.zadd(
        route.key("drainers"),
        {k: time.time() - 60 for k in client.zrange(route.key("drainers"), 0, -1)},
    )
    assert queueing.ensure_drainer(client, route, 30)
    assert _sent_wakes(route) == 2
