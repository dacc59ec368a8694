"""Per-process LRU cache of loaded models, bounded by entry count and by estimated bytes.

An entry's size is the larger of its file's size and what loading it grew the process by (its
resident set): a compressed file, or a small one that builds large arrays, weighs what it takes
in memory, not what it took on disk.

Keyed by (model id, sha256) — never by path — so a new artifact under the same id can never be
served from a stale entry. Thread-safe: Celery's thread pools and the metrics reader share it.
`model_cache()` is this process's one instance.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.config import get_settings

CacheKey = tuple[str, str]  # (model id, sha256)
_PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int:
    """This process's resident set size (one read of /proc/self/statm; 0 where there is none)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


@dataclass
class _Entry:
    value: Any
    size_bytes: int


@dataclass
class ModelCache:
    max_entries: int
    max_bytes: int
    stats: CacheStats = field(default_factory=CacheStats)
    _entries: OrderedDict[CacheKey, _Entry] = field(default_factory=OrderedDict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def get_or_load(
        self, key: CacheKey, size_bytes: int, loader: Callable[[], Any]
    ) -> tuple[Any, bool]:
        """The cached value (a hit refreshes its recency) or a freshly loaded one; and whether
        it was a hit. Loading happens outside the lock so one slow load blocks no other model."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.stats.hits += 1
                return entry.value, True
            self.stats.misses += 1
        before = resident_bytes()
        value = loader()
        self.put(key, value, max(size_bytes, resident_bytes() - before))
        return value, False

    def put(self, key: CacheKey, value: Any, size_bytes: int) -> None:
        with self._lock:
            self._entries[key] = _Entry(value, size_bytes)
            self._entries.move_to_end(key)
            self._shrink(keep=key)

    def _shrink(self, keep: CacheKey) -> None:
        # The newest entry stays even alone over the byte bound: a model larger than the whole
        # budget must still be servable, it just evicts everything else.
        while len(self._entries) > 1 and (
            len(self._entries) > self.max_entries or self.total_bytes > self.max_bytes
        ):
            oldest = next(iter(self._entries))
            if oldest == keep:
                break
            del self._entries[oldest]
            self.stats.evictions += 1

    def evict_model(self, model_id: str) -> int:
        """Drop every entry of a model (disabled, deleted or replaced); returns how many."""
        with self._lock:
            doomed = [k for k in self._entries if k[0] == model_id]
            for key in doomed:
                del self._entries[key]
            self.stats.evictions += len(doomed)
            return len(doomed)

    def __contains__(self, key: CacheKey) -> bool:
        with self._lock:
            return key in self._entries

    def keys(self) -> list[CacheKey]:
        """Keys from least to most recently used."""
        with self._lock:
            return list(self._entries)

    @property
    def total_bytes(self) -> int:
        return sum(e.size_bytes for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


@functools.lru_cache(maxsize=1)
def model_cache() -> ModelCache:
    """This process's cache (with prefork, each child has its own: size it per child)."""
    settings = get_settings()
    return ModelCache(settings.model_cache_size, int(settings.model_cache_max_mb * 1024 * 1024))
