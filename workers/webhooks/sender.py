"""One delivery attempt over HTTP: a POST to the very address the SSRF check approved (never a
second DNS lookup), with the URL's name as Host header and TLS server name, no redirects
followed, WEBHOOK_TIMEOUT_S for the whole attempt and at most 64 KB of the answer read."""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass

import urllib3
from urllib3.exceptions import HTTPError

from shared.webhooks.addresses import IPAddress, Target

MAX_ANSWER_BYTES = 64 * 1024
_READ_BLOCK = 8192
_USER_AGENT = "mlsp-webhooks/1"


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no answer (connection refused, timeout, TLS failure)
    error: str | None
    seconds: float


def post(
    target: Target, addresses: list[IPAddress], headers: dict[str, str], body: bytes, timeout: float
) -> Answer:
    """POST `body` to `target` at the first of `addresses` that accepts a connection."""
    started = time.monotonic()
    deadline = started + timeout
    error = "no address to connect to"
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            error = f"no answer within {timeout:g} s"
            break
        try:
            status = _attempt(target, address, headers, body, remaining, deadline)
            return Answer(status, None, time.monotonic() - started)
        except urllib3.exceptions.NewConnectionError as exc:
            error = f"cannot connect to {address}: {exc.__class__.__name__}"
        except (HTTPError, OSError) as exc:
            error = _describe(exc, timeout)
            break
    return Answer(None, error, time.monotonic() - started)


def _attempt(
    target: Target,
    address: IPAddress,
    headers: dict[str, str],
    body: bytes,
    remaining: float,
    deadline: float,
) -> int:
    pool = _pool(target, address, remaining)
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers={**headers, **_fixed_headers(target)},
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        _drain(response, deadline)
        return response.status
    finally:
        pool.close()


def _pool(target: Target, address: IPAddress, timeout: float) -> urllib3.HTTPConnectionPool:
    limits = urllib3.Timeout(connect=timeout, read=timeout)
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            str(address),
            target.port,
            timeout=limits,
            maxsize=1,
            retries=False,
            server_hostname=target.host,
            assert_hostname=target.host,
            ssl_context=ssl.create_default_context(),
        )
    return urllib3.HTTPConnectionPool(
        str(address), target.port, timeout=limits, maxsize=1, retries=False
    )


def _fixed_headers(target: Target) -> dict[str, str]:
    default = 443 if target.scheme == "https" else 80
    host = target.host if ":" not in target.host else f"[{target.host}]"
    return {
        "Host": host if target.port == default else f"{host}:{target.port}",
        "Content-Type": "application/json",
        "User-Agent": _USER_AGENT,
    }


def _drain(response: urllib3.BaseHTTPResponse, deadline: float) -> None:
    """Read at most MAX_ANSWER_BYTES of the answer, and stop at the deadline: a receiver that
    trickles its answer cannot hold the attempt longer than the timeout."""
    read = 0
    try:
        while read < MAX_ANSWER_BYTES and time.monotonic() < deadline:
            # read1: whatever has arrived (read(n) would wait for all n bytes, one slow
            # byte at a time, each within the socket timeout, far past the deadline).
            block = response.read1(_READ_BLOCK, decode_content=False)
            if not block:
                break
            read += len(block)
    finally:
        response.release_conn()
        response.close()


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, urllib3.exceptions.SSLError | ssl.SSLError):
        return f"TLS failed: {exc}"[:300]
    return f"{exc.__class__.__name__}: {exc}"[:300]
