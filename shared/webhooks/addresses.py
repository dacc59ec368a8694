"""Which receivers may be called (server-side request forgery): https only, and every address a
name resolves to must be public, checked when an endpoint is saved and again at every delivery
(DNS answers change). The delivery then connects to the very address checked here, so a second
lookup cannot swap in a private one (DNS rebinding).

WEBHOOK_ALLOW_HTTP and WEBHOOK_ALLOW_PRIVATE lift the two rules, for development and tests.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_CHARS = 2048


class Refused(Exception):
    """A receiver URL or address that may not be called; the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # the name as written (Host header, TLS server name)
    port: int
    path: str  # path and query, as sent in the request line


def parse(url: str, *, allow_http: bool) -> Target:
    """The URL's parts, or Refused for anything but an absolute http(s) URL with a host."""
    if len(url) > MAX_URL_CHARS:
        raise Refused(f"the URL is longer than {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"the URL is malformed ({exc})") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise Refused("the URL must be https" if not allow_http else "the URL must be http(s)")
    if not parts.hostname:
        raise Refused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise Refused("the URL may not carry credentials")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, parts.hostname, port or default, path)


def is_public(address: IPAddress) -> bool:
    """A globally routable unicast address: not loopback, private, link-local (169.254.0.0/16,
    the cloud metadata service), shared (100.64.0.0/10), multicast, reserved or unspecified."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_public(address.ipv4_mapped)
    return address.is_global and not address.is_multicast


def resolve(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """Every address `host` resolves to, all of them public (unless allowed), or Refused."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"{host} does not resolve ({exc})") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(i[4][0].split("%")[0]) for i in infos))
    if not addresses:
        raise Refused(f"{host} does not resolve")
    private = [str(a) for a in addresses if not is_public(a)]
    if private and not allow_private:
        raise Refused(f"{host} resolves to a non-public address ({', '.join(private)})")
    return addresses


def check(url: str, *, allow_http: bool, allow_private: bool) -> tuple[Target, list[IPAddress]]:
    """Parse and resolve a receiver URL: what a delivery connects to, or Refused."""
    target = parse(url, allow_http=allow_http)
    return target, resolve(target.host, target.port, allow_private=allow_private)
