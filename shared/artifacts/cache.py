"""A host's read-through cache of artifacts from a remote store: files named by their content
(sha256, or the object's ETag where no hash is recorded) under one directory that every process
of the host shares (web, worker children, beat).

Concurrent misses of one entry download it once: the first process takes the entry's file lock
and downloads into a temporary file in the same directory, then renames it into place (atomic:
a reader sees the whole file or none); the others wait on the lock and find the file. The
directory is bounded by bytes: past ARTIFACT_CACHE_MAX_MB the least recently used entries go,
except those used in the last `keep_recent_s` (a path handed out a moment ago may not be open
yet; once open, a removed file stays readable), so the bound is soft by what is in use.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_NAME = re.compile(r"^[0-9A-Za-z_-]{1,200}$")
_PART = ".part-"  # downloads in progress (or left by a killed process)
STALE_PART_S = 3600


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


class DiskCache:
    def __init__(self, root: Path, max_bytes: int, keep_recent_s: float = 300) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.keep_recent_s = keep_recent_s
        self.stats = CacheStats()
        self._locks = self.root / ".locks"
        self._locks.mkdir(parents=True, exist_ok=True)
        self._stats_lock = threading.Lock()

    def lookup(self, name: str) -> Path | None:
        """The entry's path when it is here (its use time refreshed for the LRU), else None."""
        path = self.root / _checked(name)
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        return path

    def fill(self, name: str, download: Callable[[BinaryIO], None]) -> Path:
        """The entry's path, downloaded first (once per host) when it is not here.
        `download(out)` writes the bytes; if it raises, nothing is cached."""
        hit = self.lookup(name)
        if hit is None:
            with self._locked(name):
                # Another process may have downloaded it while this one waited for the lock.
                hit = self.lookup(name)
                if hit is None:
                    self._download(name, download)
            if hit is None:
                self._count(misses=1)
                self.shrink(keep=name)
                return self.root / name
        self._count(hits=1)
        return hit

    def shrink(self, keep: str | None = None) -> int:
        """Evict least recently used entries until the total is within max_bytes; returns how
        many. One process shrinks at a time; the others skip (it is the same work)."""
        guard = _try_lock(self._locks / ".shrink")
        if guard is None:
            return 0
        try:
            return self._evict(self._entries(), keep)
        finally:
            os.close(guard)

    def total_bytes(self) -> int:
        return sum(size for _, size, _ in self._entries())

    def _entries(self) -> list[tuple[float, int, str]]:
        """(last use, size, name) of each entry; stale partial downloads removed on the way."""
        now, found = time.time(), []
        for entry in os.scandir(self.root):
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if entry.name.startswith(_PART) and now - st.st_mtime > STALE_PART_S:
                Path(entry.path).unlink(missing_ok=True)  # a killed download's leftover
            elif entry.is_file(follow_symlinks=False) and not entry.name.startswith("."):
                found.append((st.st_mtime, st.st_size, entry.name))
        return found

    def _evict(self, entries: list[tuple[float, int, str]], keep: str | None) -> int:
        total, evicted, now = sum(size for _, size, _ in entries), 0, time.time()
        for used, size, name in sorted(entries):
            if total <= self.max_bytes:
                break
            if name == keep or now - used < self.keep_recent_s:
                continue
            fd = _try_lock(self._locks / name)
            if fd is None:  # being downloaded again right now: leave it
                continue
            try:
                if self._used_since(name, now - self.keep_recent_s):
                    continue  # a reader took it after the scan
                (self.root / name).unlink(missing_ok=True)
                (self._locks / name).unlink(missing_ok=True)
            finally:
                os.close(fd)
            total -= size
            evicted += 1
        self._count(evictions=evicted)
        return evicted

    def _used_since(self, name: str, since: float) -> bool:
        try:
            return (self.root / name).stat().st_mtime >= since
        except FileNotFoundError:
            return False

    def _download(self, name: str, download: Callable[[BinaryIO], None]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=_PART)
        try:
            with os.fdopen(fd, "wb") as out:
                download(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.root / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        fd = _wait_for(self._locks / _checked(name))
        try:
            yield
        finally:
            os.close(fd)

    def _count(self, hits: int = 0, misses: int = 0, evictions: int = 0) -> None:
        with self._stats_lock:
            self.stats.hits += hits
            self.stats.misses += misses
            self.stats.evictions += evictions


def _wait_for(path: Path) -> int:
    """An exclusive flock on `path`, waiting as long as another process holds it."""
    return _lock(path, fcntl.LOCK_EX)


def _try_lock(path: Path) -> int | None:
    """An exclusive flock on `path`, or None at once when another process holds it."""
    try:
        return _lock(path, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return None


def _lock(path: Path, flags: int) -> int:
    """flock on `path` (created when missing). An evictor removes lock files it holds, so after
    locking, check the file is still the one at `path`; if not, lock the new one."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, flags)
        except BaseException:
            os.close(fd)
            raise
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _checked(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"invalid cache entry name {name!r}")
    return name
