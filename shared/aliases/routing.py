"""How a bare name's traffic split picks a version, and which requests are copied to a shadow.

Weights are integer percentages summing to 100, so a request is a bucket in 0..99: drawn at
random, or, for sticky routing, hashed from the caller's routing key (the same key lands on the
same version for as long as the weights stay the same).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

BUCKETS = 100

# Not a secret: Mersenne Twister is enough for a split, and costs no system call per request.
_random = random.Random()  # noqa: S311


def bucket(name: str, key: str | None) -> int:
    """The request's bucket: stable for a routing key (per name), random without one."""
    if key is None:
        return _random.randrange(BUCKETS)
    digest = hashlib.blake2b(f"{name}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def pick(routes: Sequence[tuple[int, int]], at: int) -> int:
    """The version whose cumulative weight range holds bucket `at` ((version, weight) pairs, in
    the order they were set; weights sum to BUCKETS)."""
    total = 0
    for version, weight in routes:
        total += weight
        if at < total:
            return version
    return routes[-1][0]  # unreachable while weights sum to BUCKETS


def copy_to_shadow(percent: int) -> bool:
    """Whether this request is also sent to the shadow version."""
    return percent >= BUCKETS or _random.randrange(BUCKETS) < percent
