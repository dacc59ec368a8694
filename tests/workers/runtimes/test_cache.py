"""The per-process LRU model cache (pure unit tests: no database)."""

from __future__ import annotations

import threading

import pytest

from workers.runtimes.cache import ModelCache

pytestmark = pytest.mark.no_db


def _loader(calls: list[str], name: str):
    def load():
        calls.append(name)
        return f"model-{name}"

    return load


def test_lru_evicts_least_recently_used():
    cache = ModelCache(max_entries=2, max_bytes=10**9)
    calls: list[str] = []
    for name in ("A", "B", "A", "C"):
        cache.get_or_load((name, "sha"), 1, _loader(calls, name))
    assert calls == ["A", "B", "C"]  # the second A was a hit
    assert ("A", "sha") in cache
    assert ("B", "sha") not in cache
    assert cache.keys() == [("A", "sha"), ("C", "sha")]
    assert (cache.stats.hits, cache.stats.misses, cache.stats.evictions) == (1, 3, 1)


def test_hit_flag_and_value():
    cache = ModelCache(max_entries=4, max_bytes=10**9)
    value, hit = cache.get_or_load(("m", "1"), 1, lambda: "x")
    assert (value, hit) == ("x", False)
    assert cache.get_or_load(("m", "1"), 1, lambda: "y") == ("x", True)


def test_new_sha_is_a_new_entry():
    cache = ModelCache(max_entries=4, max_bytes=10**9)
    cache.get_or_load(("m", "old"), 1, lambda: "old")
    assert cache.get_or_load(("m", "new"), 1, lambda: "new") == ("new", False)


def test_byte_bound_evicts_oldest_but_keeps_newest():
    cache = ModelCache(max_entries=10, max_bytes=100)
    cache.get_or_load(("a", "1"), 60, lambda: "a")
    cache.get_or_load(("b", "1"), 60, lambda: "b")
    assert cache.keys() == [("b", "1")]
    cache.get_or_load(("huge", "1"), 500, lambda: "huge")  # bigger than the budget: still served
    assert cache.keys() == [("huge", "1")]


def test_evict_model_drops_all_its_entries():
    cache = ModelCache(max_entries=10, max_bytes=10**9)
    cache.get_or_load(("m", "1"), 1, lambda: 1)
    cache.get_or_load(("m", "2"), 1, lambda: 2)
    cache.get_or_load(("n", "1"), 1, lambda: 3)
    assert cache.evict_model("m") == 2
    assert cache.keys() == [("n", "1")]


def test_thread_safety_under_contention():
    cache = ModelCache(max_entries=3, max_bytes=10**9)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(500):
                key = (str((i + j) % 5), "s")
                value, _ = cache.get_or_load(key, 1, lambda k=key: k[0])
                assert value == key[0]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(cache) <= 3
    assert cache.stats.hits + cache.stats.misses == 8 * 500
