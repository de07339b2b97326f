"""Rate limits per API key, counted in the shared cache (Redis in production)."""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Protocol, cast

from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from .metrics import AUTH_FAILURES

logger = logging.getLogger(__name__)

_PERIODS = {"second": 1, "minute": 60, "hour": 3600}


class _ApiKey(Protocol):
    prefix: str


def parse_rate(rate: str) -> tuple[int, int]:
    """ "6000/minute" → (6000, 60)."""
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period.strip().rstrip("s")]


def _count(key: str, *, timeout: int) -> int:
    """Add one to the window's counter and return it: one round trip to Redis, two elsewhere."""
    redis_client = getattr(getattr(cache, "_cache", None), "get_client", None)
    if redis_client is not None:  # Django's Redis backend: INCR, and EXPIRE on the window's first hit
        full_key = cache.make_and_validate_key(key)
        pipe = redis_client(full_key, write=True).pipeline(transaction=False)
        pipe.incr(full_key)
        pipe.expire(full_key, timeout, nx=True)
        return int(pipe.execute()[0])
    cache.add(key, 0, timeout=timeout)
    return int(cache.incr(key))


class ApiKeyRateThrottle(BaseThrottle):
    """A fixed window per key: atomic increments, so every web process shares one count."""

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        # The only authentication class (payments' API keys) leaves a key, or None where none is asked.
        api_key = cast(_ApiKey | None, request.auth)
        if api_key is None or not settings.PAYGATE_RATE_LIMIT:
            return True
        limit, period = parse_rate(settings.PAYGATE_RATE_LIMIT)
        now = time.time()
        key = f"ratelimit:{api_key.prefix}:{int(now // period)}"
        try:
            count = _count(key, timeout=period + 1)
        except Exception:
            logger.warning("rate limit store unavailable; not limiting", exc_info=True)
            return True
        if count > limit:
            self._wait = period - (now % period)
            return False
        return True

    def wait(self) -> float | None:
        return self._wait


class FailureLimit:
    """Counts failures (wrong API keys, bad signatures) per scope in a fixed window, in the shared cache.

    `record()` is called after a failure and says when that failure is over the limit: only
    failing attempts are refused, so a valid key or signature from a busy address (every client
    behind one load balancer) is never refused for others' failures. Successes are never counted.
    """

    def __init__(self, name: str, *, setting: str) -> None:
        self.name = name
        self.setting = setting

    def _window(self) -> tuple[int, int, float] | None:
        rate = getattr(settings, self.setting)
        if not rate:
            return None
        limit, period = parse_rate(rate)
        return limit, period, time.time()

    def _key(self, scope: str, period: int, now: float) -> str:
        return f"failures:{self.name}:{scope}:{int(now // period)}"

    def blocked(self, scope: str) -> float | None:
        """Seconds until `scope` may try again, or None when it may try now."""
        window = self._window()
        if window is None:
            return None
        limit, period, now = window
        try:
            count = cache.get(self._key(scope, period, now)) or 0
        except Exception:
            logger.warning("failure limit store unavailable; not limiting", exc_info=True)
            return None
        return _retry_after(period, now) if int(count) >= limit else None

    def record(self, scope: str) -> float | None:
        """Count one failure; seconds until `scope` may try again when this one used up the limit."""
        window = self._window()
        if window is None:
            return None
        limit, period, now = window
        try:
            count = _count(self._key(scope, period, now), timeout=period + 1)
        except Exception:
            logger.warning("failure limit store unavailable; not limiting", exc_info=True)
            AUTH_FAILURES.labels(self.name, "counted").inc()
            return None
        limited = count > limit
        AUTH_FAILURES.labels(self.name, "limited" if limited else "counted").inc()
        return _retry_after(period, now) if limited else None


def _retry_after(period: int, now: float) -> float:
    # Whole seconds, rounded up: Retry-After is an integer and must not promise too early.
    return float(max(1, math.ceil(period - (now % period))))


class ActionLimit(FailureLimit):
    """Counts every call of an action (not only failures) per scope, in a fixed window."""

    def hit(self, scope: str) -> float | None:
        """Count one call; seconds until `scope` may call again when this one is over the limit."""
        return self.record(scope)
