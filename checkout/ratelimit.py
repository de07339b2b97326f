"""Pay page requests per client address: a fixed window shared by every web process (the cache)."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from core.clientip import client_ip

_WINDOW_SECONDS = 60


def pay_page_allowed(request: HttpRequest) -> bool:
    limit = settings.PAYGATE_PAY_PAGE_RATE_PER_MINUTE
    if limit <= 0:
        return True
    window = int(time.time() // _WINDOW_SECONDS)
    key = f"paypage:{client_ip(request)}:{window}"
    try:
        cache.add(key, 0, timeout=_WINDOW_SECONDS + 5)
        count = cache.incr(key)
    except Exception:  # the cache down must not take the pay page with it
        return True
    return int(count) <= limit
