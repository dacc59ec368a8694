"""A server's port checked before it starts: a port already taken is one line naming the
variable that moves it, instead of the server's own backtrace (granian's is 85 lines)."""

from __future__ import annotations

import errno
import socket


def port_problem(host: str, port: int, variable: str) -> str | None:
    """Why a server cannot listen on host:port, or None. `variable` is the setting that moves
    it (PORT, FLOWER_PORT)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror} (check HOST)"
    with socket.socket(family, kind, proto) as probe:
        # As servers do: a port left in TIME_WAIT by a stopped server is free to take again.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} is already in use; stop what holds it or set {variable}"
            return f"cannot listen on {host}:{port}: {exc.strerror} (check HOST and {variable})"
    return None


def require_port(server: str, host: str, port: int, variable: str) -> None:
    """Exit (status 1) with one line on stderr when `server` cannot listen on host:port."""
    if problem := port_problem(host, port, variable):
        raise SystemExit(f"{server}: {problem}")
