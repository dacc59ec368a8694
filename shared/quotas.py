"""Per-caller rate quotas counted inside the script that admits a job (shared/queueing.py), so
that a rate-limited prediction costs no Redis round trip of its own.

flask-limiter guards every other limited route; on the prediction routes it cost two round
trips per request (the hit, then the window's state for the X-RateLimit headers) and ~1.1 ms of
web CPU beside ~2.0 ms for the whole tuned request (docs/measurements.md, "The rate limiter on
the prediction path"). The same limit strings (`RATE_LIMIT_PREDICT`, parsed by the `limits`
package flask-limiter itself uses) are counted here as a sliding-window counter, the strategy
web/limits.py gives flask-limiter: the count of the current fixed window plus the previous
window's count weighted by the share of it still inside the sliding window.

Only admitted requests count: one refused as stale, full or over its quota does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from limits import RateLimitItem, parse_many

from shared.redis_client import PREFIX

# Lua, prepended to the admitting scripts. A quota is two KEYS (the current window's counter,
# then the previous one's) and four ARGV (amount, window seconds, the previous window's weight,
# when the current window ends).
QUOTA_LUA = """
local function quota_state(kfirst, afirst, n)
  local tight = nil
  for i = 0, n - 1 do
    local counts = redis.call('MGET', KEYS[kfirst + 2 * i], KEYS[kfirst + 2 * i + 1])
    local amount = tonumber(ARGV[afirst + 4 * i])
    local weight = tonumber(ARGV[afirst + 4 * i + 2])
    local used = math.floor(tonumber(counts[2] or '0') * weight) + tonumber(counts[1] or '0')
    if tight == nil or amount - used < tight[2] then
      tight = {amount, amount - used, ARGV[afirst + 4 * i + 3]}
    end
  end
  return tight
end
local function quota_hit(kfirst, afirst, n)
  for i = 0, n - 1 do
    redis.call('INCR', KEYS[kfirst + 2 * i])
    redis.call('EXPIRE', KEYS[kfirst + 2 * i], 2 * tonumber(ARGV[afirst + 4 * i + 1]))
  end
end
"""


class QuotaSpent(Exception):
    """The caller's quota has no room: nothing was pushed or counted."""

    def __init__(self, state: QuotaState) -> None:
        super().__init__(f"rate limit of {state.limit} reached")
        self.state = state


@dataclass(frozen=True)
class QuotaState:
    """The tightest of the caller's quotas, as the X-RateLimit headers report it."""

    limit: int
    remaining: int
    reset_at: int  # Unix time at which the current window ends

    def retry_after(self, now: float) -> int:
        return max(1, math.ceil(self.reset_at - now))


@dataclass
class Quota:
    """A caller's quotas at one moment: the script's KEYS and ARGV for them, and the state the
    script that counted them found (for the answer's headers)."""

    keys: list[str] = field(default_factory=list)
    args: list[int | float] = field(default_factory=list)
    state: QuotaState | None = None

    @property
    def count(self) -> int:
        return len(self.keys) // 2


def parse(limits: str) -> list[RateLimitItem]:
    """`600/minute`, `10/second;1000/hour`: flask-limiter's notation."""
    return parse_many(limits)


def quota(caller: str, items: list[RateLimitItem], now: float) -> Quota:
    keys: list[str] = []
    args: list[int | float] = []
    for item in items:
        window = item.get_expiry()
        index = int(now // window)
        elapsed = now - index * window
        base = f"{PREFIX}quota:{caller}:{item.amount}/{window}"
        keys += [f"{base}:{index}", f"{base}:{index - 1}"]
        args += [item.amount, window, (window - elapsed) / window, (index + 1) * window]
    return Quota(keys, args)


def state(triple: list, counted: bool) -> QuotaState | None:
    """The tightest quota as a script replied it (amount, room before this request, window
    end), or None without quotas; `counted`: this request was admitted and took one."""
    if not triple:
        return None
    amount, room, reset_at = triple
    left = int(room) - (1 if counted else 0)
    return QuotaState(int(amount), max(0, left), int(float(reset_at)))
