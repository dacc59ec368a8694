"""How mlsp-dev runs its children and servers: each in its own session, stop signals routed to
whatever is running, and processes it did not start found and stopped by pid."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TextIO

CHILD_STOP_TIMEOUT_S = 10.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stop(BaseException):
    """A stop signal arrived while no child was running.

    A BaseException (like KeyboardInterrupt) so that no `except Exception` swallows it and every
    `finally` on the way up stops the servers.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class SignalRouter:
    """Decides what a stop signal means at the moment it arrives.

    - a child is running: forward the signal to it (it is in its own session, so the terminal's
      Ctrl-C does not reach it directly) and let its exit drive ours;
    - inside `shielded()` (server start-up and shutdown): remember it, act once that step is done,
      so a half-started or half-stopped server is never abandoned;
    - otherwise: raise Stop.
    """

    def __init__(self) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        self.received: int | None = None
        self._shield_depth = 0

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        first = self.received is None
        self.received = self.received or signum
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)
        elif self._shield_depth or not first:
            say(f"{signal.Signals(signum).name} received, stopping (please wait)...")
        else:
            raise Stop(signum)

    @contextmanager
    def shielded(self) -> Iterator[None]:
        self._shield_depth += 1
        try:
            yield
        finally:
            self._shield_depth -= 1

    def raise_if_received(self) -> None:
        if self.received is not None:
            raise Stop(self.received)


signal_router = SignalRouter()


def say(message: str, stream: TextIO = sys.stderr) -> None:
    """Print one line as mlsp-dev (stderr by default: stdout may be captured by a caller)."""
    print(f"mlsp-dev: {message}", file=stream, flush=True)


# --- processes -------------------------------------------------------------------------------


def _exit_code(returncode: int) -> int:
    # Popen reports death-by-signal as -N; shells (and our callers) expect 128 + N.
    return 128 - returncode if returncode < 0 else returncode


def run_child(cmd: list[str] | str, env: dict[str, str]) -> int:
    """Run a command to completion with signals forwarded to it; return its exit code."""
    if signal_router.received is not None:
        return 128 + signal_router.received
    with signal_router.shielded():
        # Own session: only our forwarded signal reaches it, once (not also the terminal's).
        proc = subprocess.Popen(  # noqa: S603 - commands are ours or the project's Procfile
            cmd, env=env, shell=isinstance(cmd, str), start_new_session=True
        )
        signal_router.child = proc
    try:
        if signal_router.received is not None:  # arrived while spawning
            proc.send_signal(signal_router.received)
        return _exit_code(proc.wait())
    finally:
        signal_router.child = None
        stop_process(proc, signal.SIGTERM)


def stop_process(proc: subprocess.Popen[bytes], signum: int) -> None:
    """Stop a process we started, escalating to SIGKILL if it ignores `signum`."""
    if proc.poll() is not None:
        return
    proc.send_signal(signum)
    try:
        proc.wait(CHILD_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def pid_alive(pid: int) -> bool:
    import psutil  # pgserver's dependency; imported late like pgserver itself

    # A SIGKILLed run stays a zombie until reaped: it counts as gone.
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def terminate_pid(pid: int) -> None:
    """SIGTERM a process that is not our child and wait for it (so its port is free again)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        proc.terminate()
        proc.wait(CHILD_STOP_TIMEOUT_S)
    except psutil.TimeoutExpired:
        proc.kill()
    except psutil.NoSuchProcess:
        pass


def process_name(pid: int) -> str:
    import psutil

    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return ""
