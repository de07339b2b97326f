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
            cache.add(key, 0, timeout=period + 1)
            count = cache.incr(key)
        except Exception:
            logger.warning("rate limit store unavailable; not limiting", exc_info=True)
            return True
        if count > limit:
            self._wait = period - (now % period)
            return False
        return True

    def wait(self) -> float | None:
        return self._wait
