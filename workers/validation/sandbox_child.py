"""The validation sandbox's own process: started clean by workers/validation/sandbox.py, it imports
the model libraries once, then forks one short-lived child per upload.

The child is where a stranger's file is first read: it has no secrets or service URLs in its
environment (this process was started with a clean one and never reads the settings), an empty
working directory, the file's bytes rather than a path, no right to write files, no network where
the kernel allows a private namespace, another user id when started as root, and limits on
memory (RLIMIT_AS), CPU seconds and wall-clock time. Its answer is JSON plus the compiled ONNX
bytes, over a pipe: nothing the parent reads back is unpickled.

Wire format, both ways: a 4-byte big-endian length and a JSON header, then an 8-byte length and
a binary blob (the artifact going in, the compiled ONNX model or nothing coming out).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import select
import signal
import sys
import time
from typing import IO, Any

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_PR_SET_NO_NEW_PRIVS = 38
_NOBODY = 65534
MAX_HEADER = 16 << 20
MAX_ARTIFACT = 16 << 30  # the worker sends at most MAX_UPLOAD_MB


class SandboxError(Exception):
    """The child did not produce an answer: killed, crashed, or out of its limits."""


def write_frame(out: IO[bytes], header: dict[str, Any], blob: bytes = b"") -> None:
    data = json.dumps(header).encode()
    out.write(len(data).to_bytes(4, "big") + data + len(blob).to_bytes(8, "big"))
    out.write(blob)
    out.flush()


def read_frame(stream: IO[bytes], max_blob: int) -> tuple[dict[str, Any], bytes]:
    size = int.from_bytes(_exactly(stream, 4), "big")
    if size > MAX_HEADER:
        raise SandboxError("sandbox answer header too large")
    header = json.loads(_exactly(stream, size))
    blob_size = int.from_bytes(_exactly(stream, 8), "big")
    if blob_size > max_blob:
        raise SandboxError("sandbox answer too large")
    return header, _exactly(stream, blob_size)


def _exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise SandboxError("sandbox closed the pipe")
    return data


def main() -> None:
    """Serve requests from stdin until it closes; stray prints of libraries go to stderr."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.dont_write_bytecode = True
    _preload()
    requests = sys.stdin.buffer
    while True:
        try:
            header, artifact = read_frame(requests, MAX_ARTIFACT)
        except SandboxError:
            return  # the worker went away
        answer, blob = _serve(header, artifact)
        write_frame(replies, answer, blob)


# Imported by the libraries only when first needed: the child may run as a user who cannot read
# the interpreter's own files, so everything it uses is imported here, before it forks.
_LAZY_MODULES = (
    "skops.io",
    "skops.io._audit",
    "skops.io._utils",
    "zipfile",
    "encodings.cp437",
    "urllib.error",
    "pandas",
    "onnxruntime",
    "skl2onnx",
    "skl2onnx.algebra.onnx_operator_mixin",  # by onnxmltools' converters of XGBoost and LightGBM
)


def _preload() -> None:
    """Import everything a validation uses, so that each child starts in milliseconds."""
    import importlib

    from shared.jobs import inputs
    from shared.safe_load import ALLOWED_GLOBALS
    from workers.validation import inspection  # noqa: F401 - the work itself, with its libraries

    inputs.use_system_allocator()  # before its memory cap (confine)

    for module in {m for m, _ in ALLOWED_GLOBALS} | set(_LAZY_MODULES):
        importlib.import_module(module.replace("numpy.core.", "numpy._core."))


def _serve(header: dict[str, Any], artifact: bytes) -> tuple[dict[str, Any], bytes]:
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: confine, work, answer, and never return into the loop
        os.close(reader)
        _child(header, artifact, writer)
    os.close(writer)
    return _collect(pid, reader, float(header["limits"]["wall_s"]), int(header["max_answer"]))


def _child(header: dict[str, Any], artifact: bytes, writer: int) -> None:
    code = 0
    try:
        with os.fdopen(writer, "wb") as out:
            try:
                confine(header["limits"])
                from workers.validation.inspection import inspect_upload

                meta, blob = inspect_upload(header, artifact)
                write_frame(out, {"ok": True, "meta": meta}, blob)
            except MemoryError:
                write_frame(out, {"ok": False, "error": "validation ran out of its memory limit"})
            except Exception as exc:
                write_frame(out, {"ok": False, "error": _describe(exc)})
    except BaseException:
        code = 1
    os._exit(code)


def _collect(pid: int, reader: int, wall_s: float, max_answer: int) -> tuple[dict, bytes]:
    """Read the child's answer within the wall clock, then reap it; a child that ran over its
    time is killed, one that died without answering is described by how it died."""
    chunks, size, deadline = [], 0, time.monotonic() + wall_s
    with os.fdopen(reader, "rb", buffering=0) as pipe:
        while (left := deadline - time.monotonic()) > 0 and size <= max_answer:
            if not select.select([pipe], [], [], left)[0]:
                continue
            chunk = pipe.read(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    timed_out = time.monotonic() >= deadline
    if timed_out or size > max_answer:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    data = b"".join(chunks)
    if timed_out:
        return {"ok": False, "error": f"validation took longer than {wall_s:g} s"}, b""
    if size > max_answer:
        return {"ok": False, "error": "validation answered more than it may"}, b""
    return _answer(data, status)


def _answer(data: bytes, status: int) -> tuple[dict[str, Any], bytes]:
    try:
        import io

        return read_frame(io.BytesIO(data), len(data))
    except (SandboxError, ValueError):
        pass
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        why = {signal.SIGXCPU: "ran out of its CPU time limit", signal.SIGKILL: "was killed"}
        text = why.get(number, f"crashed ({signal.Signals(number).name})")
        return {"ok": False, "error": f"validation {text}"}, b""
    return {"ok": False, "error": "validation ended without an answer"}, b""


def confine(limits: dict[str, Any]) -> None:
    """Limits first (they hold whatever else fails), then what the kernel allows of isolation."""
    address_space = _vm_size() + int(limits["memory_mb"]) * (1 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    cpu = int(limits["cpu_s"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write then fails instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _isolate()


def _isolate() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if os.getuid() == 0:
        libc.unshare(_CLONE_NEWNET)  # an empty network namespace: only a down loopback
        os.setgroups([])
        os.setgid(_NOBODY)
        os.setuid(_NOBODY)
    else:
        libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET)  # where unprivileged namespaces are on


def _vm_size() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _describe(exc: BaseException) -> str:
    """Our own refusals as they are; anything else as its type and first line."""
    from workers.validation.inspection import EXPECTED

    text = str(exc).strip().split("\n", 1)[0]
    if isinstance(exc, EXPECTED):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


if __name__ == "__main__":
    main()
