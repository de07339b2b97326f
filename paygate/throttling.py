"""Rate limits per API key, counted in the shared cache (Redis in production)."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger(__name__)

_PERIODS = {"second": 1, "minute": 60, "hour": 3600}


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
        api_key = request.auth
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
