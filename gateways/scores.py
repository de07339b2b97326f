"""Each route's recent outcomes and latencies, shared by every process (Redis; the cache on the embedded default).

One score per (gateway, country, currency, transaction type): a sliding window kept as a
ring of `BUCKETS` buckets. Outcomes and call latencies go into the open bucket; it closes
once it holds `window / BUCKETS` of them or is `window_seconds / BUCKETS` old, and the next
update opens the oldest bucket again, emptied. So a busy route is scored on about its last
`window` outcomes, a quiet one on its last `window_seconds` or so of traffic, and a route with
no traffic at all keeps what it last knew (a week, then it starts afresh): it is not pushed
back to the default score, and to the front, merely for being quiet.

Besides the buckets the ring keeps running totals (a bucket's counts leave them when it is
emptied), so an update and a read each touch a fixed number of fields however large the
window: no scan, and no database on the hot path. Latencies are counted in a fixed
histogram, from which the p95 is interpolated.

With Redis an update is one Lua script (atomic) and a read of many routes one pipelined
round trip. With another cache backend (the embedded default's folder) a route's ring is
one cache value, read and written back: updates from concurrent processes can be lost, as
the breaker's counts can there; enough for one machine and for tests.

If the store cannot be reached nothing is recorded and every route reads as unknown (so
routing falls back to the default score, i.e. to priority order), and the log says so.
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from django.core.cache import BaseCache, caches
from django.core.cache.backends.redis import RedisCache

from .routing import NO_SCORE, RouteScore

logger = logging.getLogger(__name__)

CACHE = "default"
BUCKETS = 10
# Upper bounds of the latency histogram's bins, in ms; the last bin holds everything slower.
LATENCY_BOUNDS_MS = (10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000)
BINS = len(LATENCY_BOUNDS_MS) + 1
# A ring nobody updated for this long is dropped.
TTL_SECONDS = 7 * 24 * 3600
_TOTALS = ("N", "S", "L", *(f"H{index}" for index in range(BINS)))


@dataclass(frozen=True, slots=True)
class ScoreKey:
    gateway_id: int
    country: str
    currency: str
    transaction_type: str
    # Scored per payment method (CONTRACT §12): a gateway good at cards may be poor at bank accounts.
    # "" for free-form details, whose key is the one used before methods existed.
    payment_method: str = ""

    @property
    def name(self) -> str:
        base = f"routescore:{self.gateway_id}:{self.country}:{self.currency}:{self.transaction_type}"
        return f"{base}:{self.payment_method}" if self.payment_method else base


@dataclass(frozen=True, slots=True)
class Window:
    size: int  # outcomes
    seconds: float

    @property
    def bucket_size(self) -> int:
        return max(1, math.ceil(self.size / BUCKETS))

    @property
    def bucket_seconds(self) -> float:
        return self.seconds / BUCKETS


def latency_bin(latency_ms: float) -> int:
    return bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)


# The ring as a Redis hash: `b` the open bucket, `t` when it opened; per bucket i `n<i>` outcomes,
# `s<i>` successes, `l<i>` latencies, `h<i>.<bin>` the histogram; and the totals over every
# bucket, `N`, `S`, `L`, `H<bin>`. The Python twin below (`_advance`) does the same to a dict.
_RECORD_SCRIPT = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local size = tonumber(ARGV[2])
local span = tonumber(ARGV[3])
local buckets = tonumber(ARGV[4])
local outcome = tonumber(ARGV[5])
local bin = tonumber(ARGV[6])
local bins = tonumber(ARGV[7])
local meta = redis.call('HMGET', key, 'b', 't')
local b = tonumber(meta[1])
if b == nil then
  b = 0
  redis.call('HSET', key, 'b', 0, 't', ARGV[1])
else
  local fill = redis.call('HMGET', key, 'n' .. b, 'l' .. b)
  local used = math.max(tonumber(fill[1]) or 0, tonumber(fill[2]) or 0)
  if used >= size or now - tonumber(meta[2]) >= span then
    b = (b + 1) % buckets
    local fields = {'n' .. b, 's' .. b, 'l' .. b}
    local totals = {'N', 'S', 'L'}
    for i = 0, bins - 1 do
      fields[#fields + 1] = 'h' .. b .. '.' .. i
      totals[#totals + 1] = 'H' .. i
    end
    local old = redis.call('HMGET', key, unpack(fields))
    for i = 1, #fields do
      local count = tonumber(old[i])
      if count and count ~= 0 then
        redis.call('HINCRBY', key, totals[i], -count)
      end
    end
    redis.call('HDEL', key, unpack(fields))
    redis.call('HSET', key, 'b', b, 't', ARGV[1])
  end
end
if outcome >= 0 then
  redis.call('HINCRBY', key, 'n' .. b, 1)
  redis.call('HINCRBY', key, 'N', 1)
  if outcome == 1 then
    redis.call('HINCRBY', key, 's' .. b, 1)
    redis.call('HINCRBY', key, 'S', 1)
  end
end
if bin >= 0 then
  redis.call('HINCRBY', key, 'l' .. b, 1)
  redis.call('HINCRBY', key, 'L', 1)
  redis.call('HINCRBY', key, 'h' .. b .. '.' .. bin, 1)
  redis.call('HINCRBY', key, 'H' .. bin, 1)
end
redis.call('EXPIRE', key, tonumber(ARGV[8]))
return b
"""


def _advance(ring: dict[str, float], *, now: float, window: Window, outcome: int, bin_: int) -> None:
    """The script above, on a dict (the store for cache backends other than Redis)."""
    if "b" not in ring:
        ring["b"], ring["t"] = 0, now
    else:
        b = int(ring["b"])
        used = max(ring.get(f"n{b}", 0), ring.get(f"l{b}", 0))
        if used >= window.bucket_size or now - ring["t"] >= window.bucket_seconds:
            b = (b + 1) % BUCKETS
            fields = [f"n{b}", f"s{b}", f"l{b}", *(f"h{b}.{index}" for index in range(BINS))]
            for field, total in zip(fields, _TOTALS, strict=True):
                count = ring.pop(field, 0)
                if count:
                    ring[total] = ring.get(total, 0) - count
            ring["b"], ring["t"] = b, now
    b = int(ring["b"])
    increments = []
    if outcome >= 0:
        increments += [f"n{b}", "N"] + ([f"s{b}", "S"] if outcome == 1 else [])
    if bin_ >= 0:
        increments += [f"l{b}", "L", f"h{b}.{bin_}", f"H{bin_}"]
    for field in increments:
        ring[field] = ring.get(field, 0) + 1


def _cache() -> BaseCache:
    return caches[CACHE]


_script: Any = None


def _redis(cache: RedisCache) -> Any:
    """Django's client of the cache's (primary) server; the same one each time with `core.cache`."""
    # `_cache` (Django's client wrapper) is private, so its stubs leave it out.
    return cast(Any, cache)._cache.get_client(None, write=True)


def score_record(
    key: ScoreKey,
    *,
    window: Window,
    success: bool | None = None,
    latency_ms: float | None = None,
    now: float | None = None,
) -> None:
    """Count an outcome (success: the payment completed), a call's latency, or both, in the route's window.

    Never raises: a store that cannot be reached loses the sample and says so in the log.
    """
    if success is None and latency_ms is None:
        return
    outcome = -1 if success is None else int(success)
    bin_ = -1 if latency_ms is None else latency_bin(latency_ms)
    now = time.time() if now is None else now
    cache = _cache()
    try:
        if isinstance(cache, RedisCache):
            global _script
            client = _redis(cache)
            if _script is None:
                # EVALSHA, loading the script into a server that does not know it yet.
                _script = client.register_script(_RECORD_SCRIPT)
            _script(
                keys=[cache.make_and_validate_key(key.name)],
                args=[repr(now), window.bucket_size, window.bucket_seconds, BUCKETS, outcome, bin_, BINS, TTL_SECONDS],
                client=client,
            )
        else:
            ring = cache.get(key.name) or {}
            _advance(ring, now=now, window=window, outcome=outcome, bin_=bin_)
            cache.set(key.name, ring, timeout=TTL_SECONDS)
    except Exception:
        logger.warning("route score store unavailable; sample not recorded", exc_info=True)


def client_share_admits(
    key: ScoreKey, *, client_id: int, window: Window, share: float, now: float | None = None
) -> bool:
    """Whether one more outcome of this client may count in the route's window: at most `share`
    of the window's size per client in each `window.seconds`, so that one merchant's traffic
    (a hundred declines on purpose, say) cannot move a country's routing for everyone.

    A fixed period approximates the sliding window. Never raises: a store that cannot be reached
    admits (the sample's own recording then says whether the store works).
    """
    if share >= 1:
        return True
    cap = max(1, math.floor(share * window.size))
    period = max(1, math.ceil(window.seconds))
    now = time.time() if now is None else now
    name = f"routeshare:{key.name}:{client_id}:{int(now // period)}"
    cache = _cache()
    try:
        cache.add(name, 0, timeout=period + 1)
        return int(cache.incr(name)) <= cap
    except Exception:
        logger.warning("route score store unavailable; client share not checked", exc_info=True)
        return True


def scores_read(keys: Sequence[ScoreKey]) -> dict[ScoreKey, RouteScore]:
    """The scores of these routes, in one round trip; a route never scored (or an unreachable store) reads as empty."""
    if not keys:
        return {}
    cache = _cache()
    try:
        if isinstance(cache, RedisCache):
            pipe = _redis(cache).pipeline(transaction=False)
            for key in keys:
                pipe.hmget(cache.make_and_validate_key(key.name), _TOTALS)
            rows = [[int(value) if value is not None else 0 for value in row] for row in pipe.execute()]
        else:
            rings = cache.get_many([key.name for key in keys])
            rows = [[int(rings.get(key.name, {}).get(name, 0)) for name in _TOTALS] for key in keys]
    except Exception:
        logger.warning("route score store unavailable; routes read as unscored", exc_info=True)
        return dict.fromkeys(keys, NO_SCORE)
    return {key: _score(row) for key, row in zip(keys, rows, strict=True)}


def scores_forget(keys: Iterable[ScoreKey]) -> None:
    """Drop these routes' windows (they start afresh)."""
    _cache().delete_many([key.name for key in keys])


def _score(row: Sequence[int]) -> RouteScore:
    samples, successes, latencies, histogram = row[0], row[1], row[2], row[3:]
    return RouteScore(
        samples=samples, successes=successes, latency_samples=latencies, p95_ms=percentile(histogram, 0.95)
    )


def percentile(histogram: Sequence[int], quantile: float) -> float | None:
    """The quantile of the latencies counted in `histogram`, interpolated inside its bin; None if empty."""
    total = sum(histogram)
    if total <= 0:
        return None
    rank = quantile * total
    seen = 0
    for index, count in enumerate(histogram):
        if count > 0 and seen + count >= rank:
            if index == len(LATENCY_BOUNDS_MS):  # the open-ended last bin: its lower bound
                return float(LATENCY_BOUNDS_MS[-1])
            low = LATENCY_BOUNDS_MS[index - 1] if index else 0
            return low + (LATENCY_BOUNDS_MS[index] - low) * (rank - seen) / count
        seen += count
    return float(LATENCY_BOUNDS_MS[-1])
