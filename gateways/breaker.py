"""A circuit breaker per gateway, shared by every worker through the cache (Redis in production).

Only technical faults count (the gateway did not act, or its outcome was unknown); a
decline is the customer's answer and never does. Faults are counted in fixed windows of
`PAYGATE_BREAKER_WINDOW_SECONDS`, the current and the previous one together, so the count
slides. At `PAYGATE_BREAKER_FAILURE_THRESHOLD` faults the breaker opens: routing skips
the gateway at once. After `PAYGATE_BREAKER_COOLDOWN_SECONDS` it is half-open: exactly
one request (whichever worker claims the probe first) is let through; a success closes
the breaker, a fault opens it again.

If the cache cannot be reached the breaker fails open — traffic flows, health checks
still apply — and says so in the log.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.cache import BaseCache, caches

logger = logging.getLogger(__name__)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def _cache() -> BaseCache:
    return caches[settings.PAYGATE_BREAKER_CACHE]


def _key(gateway_id: int, name: str) -> str:
    return f"breaker:{gateway_id}:{name}"


@contextmanager
def _failing_open(action: str, gateway_id: int) -> Iterator[None]:
    try:
        yield
    except Exception:
        logger.warning(
            "circuit breaker store unavailable (%s); failing open",
            action,
            extra={"gateway_id": gateway_id},
            exc_info=True,
        )


def _window() -> int:
    return int(time.time() // settings.PAYGATE_BREAKER_WINDOW_SECONDS)


def _fault_count(gateway_id: int) -> int:
    window = _window()
    counts = _cache().get_many([_key(gateway_id, f"faults:{window}"), _key(gateway_id, f"faults:{window - 1}")])
    return sum(int(v) for v in counts.values())


def breaker_state(gateway_id: int) -> BreakerState:
    """The breaker's state, for display and routing; CLOSED if the store is unreachable."""
    state = BreakerState.CLOSED
    with _failing_open("read", gateway_id):
        values = _cache().get_many([_key(gateway_id, "forced"), _key(gateway_id, "open_until")])
        if values.get(_key(gateway_id, "forced")) == "open":
            return BreakerState.OPEN
        open_until = values.get(_key(gateway_id, "open_until"))
        if open_until is not None:
            state = BreakerState.OPEN if time.time() < float(open_until) else BreakerState.HALF_OPEN
    return state


def breaker_permit(gateway_id: int) -> BreakerState | None:
    """May a request go to this gateway now? In half-open, only the one caller that claims the probe.

    Returns the state the request goes out under (CLOSED, or HALF_OPEN for the probe), or None.

    Only a probe's success needs reporting (`breaker_record_success`): it closes the breaker.
    """
    state = breaker_state(gateway_id)
    if state == BreakerState.CLOSED:
        return state
    if state == BreakerState.OPEN:
        return None
    allowed = True
    with _failing_open("probe", gateway_id):
        # add() is atomic: of all workers asking at once, one gets the probe.
        allowed = bool(
            _cache().add(_key(gateway_id, "probe"), 1, timeout=settings.PAYGATE_BREAKER_PROBE_TIMEOUT_SECONDS)
        )
    if not allowed:
        return None
    logger.info("circuit breaker half-open: letting one probe through", extra={"gateway_id": gateway_id})
    return BreakerState.HALF_OPEN


def _open(gateway_id: int, *, reason: str) -> None:
    cache = _cache()
    cooldown = settings.PAYGATE_BREAKER_COOLDOWN_SECONDS
    cache.set(_key(gateway_id, "open_until"), time.time() + cooldown, timeout=None)
    cache.delete(_key(gateway_id, "probe"))
    logger.warning("circuit breaker opened (%s) for %ss", reason, cooldown, extra={"gateway_id": gateway_id})


def breaker_record_fault(gateway_id: int) -> None:
    """A technical fault of this gateway (never a decline)."""
    with _failing_open("record fault", gateway_id):
        if breaker_state(gateway_id) == BreakerState.HALF_OPEN:
            _open(gateway_id, reason="probe failed")
            return
        cache = _cache()
        key = _key(gateway_id, f"faults:{_window()}")
        cache.add(key, 0, timeout=settings.PAYGATE_BREAKER_WINDOW_SECONDS * 2 + 1)
        cache.incr(key)
        if breaker_state(gateway_id) == BreakerState.CLOSED:
            faults = _fault_count(gateway_id)
            if faults >= settings.PAYGATE_BREAKER_FAILURE_THRESHOLD:
                _open(gateway_id, reason=f"{faults} faults")


def breaker_record_success(gateway_id: int) -> None:
    """The gateway answered (accepted or declined): a half-open breaker closes."""
    with _failing_open("record success", gateway_id):
        if breaker_state(gateway_id) == BreakerState.HALF_OPEN:
            breaker_close(gateway_id)
            logger.info("circuit breaker closed after a successful probe", extra={"gateway_id": gateway_id})


def breaker_force_open(gateway_id: int) -> None:
    """An operator's decision: stays open until closed by hand."""
    _cache().set(_key(gateway_id, "forced"), "open", timeout=None)
    logger.warning("circuit breaker opened by an operator", extra={"gateway_id": gateway_id})


def breaker_close(gateway_id: int) -> None:
    window = _window()
    _cache().delete_many(
        [
            _key(gateway_id, "forced"),
            _key(gateway_id, "open_until"),
            _key(gateway_id, "probe"),
            _key(gateway_id, f"faults:{window}"),
            _key(gateway_id, f"faults:{window - 1}"),
        ]
    )
