"""The worker's side of the validation sandbox: one sandbox process per worker process, started on
first use with a clean environment in an empty directory (workers/validation/sandbox_child.py says
what the child that reads each upload may and may not do).

Started lazily, after the pool has forked, so that each worker child owns its own pipes; it ends
when its worker does (its stdin closes).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.validation.sandbox_child import SandboxError, read_frame, write_frame

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]  # the checkout: workers/validation/sandbox.py
# What the sandbox's environment keeps of the worker's: locale, search path, and the OpenBLAS
# settings some processors need to compute correctly. No secrets, no service URLs.
_KEPT_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_THREADS_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from workers.validation.sandbox_child import main; main()"
)


@dataclass(frozen=True)
class Limits:
    memory_mb: int
    cpu_s: int
    wall_s: float

    def as_dict(self) -> dict[str, Any]:
        return {"memory_mb": self.memory_mb, "cpu_s": self.cpu_s, "wall_s": self.wall_s}


class Sandbox:
    """A running sandbox process; `run` sends one upload and returns its answer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._pid = 0
        # Its working directory stays empty (libraries that cache write under HOME, elsewhere);
        # the child may run as another user: it must be able to enter, not list, it.
        self._cwd = tempfile.mkdtemp(prefix="mlsp-sandbox-")
        os.chmod(self._cwd, 0o711)  # noqa: S103
        self._home = tempfile.mkdtemp(prefix="mlsp-sandbox-home-")

    def run(
        self, request: dict[str, Any], artifact: bytes, limits: Limits, max_answer: int
    ) -> tuple[dict[str, Any], bytes]:
        """The child's answer header ({"ok": True, "meta"} or {"ok": False, "error"}) and blob.
        Raises SandboxError when the sandbox process itself failed (then it is restarted)."""
        header = {**request, "limits": limits.as_dict(), "max_answer": max_answer}
        with self._lock:
            proc = self._process()
            try:
                write_frame(proc.stdin, header, artifact)  # type: ignore[arg-type]
                return read_frame(proc.stdout, max_answer)  # type: ignore[arg-type]
            except (OSError, ValueError, SandboxError) as exc:
                self._stop()
                raise SandboxError(f"validation sandbox failed: {exc}") from exc

    def _process(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None or self._pid != os.getpid():
            self._proc, self._pid = self._start(), os.getpid()
        return self._proc

    def _start(self) -> subprocess.Popen:
        env = {k: os.environ[k] for k in _KEPT_ENV if k in os.environ}
        env |= _THREADS_ENV | {"HOME": self._home}
        log.info("starting the validation sandbox")
        return subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
            [sys.executable, "-I", "-c", _BOOT, str(ROOT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=self._cwd,
            env=env,
            close_fds=True,
        )

    def _stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


_sandbox: Sandbox | None = None


def get_sandbox() -> Sandbox:
    """This process's sandbox (a forked child gets its own: the pid check in Sandbox)."""
    global _sandbox
    if _sandbox is None:
        _sandbox = Sandbox()
    return _sandbox
