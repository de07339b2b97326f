"""What the Celery workers tell the monitoring: how long tasks waited, and that queues and periodic tasks move.

- Every published task carries the time it was published (header `paygate_published_at`);
  when a worker starts it, the wait (from publication, or from the end of its countdown)
  is observed in `paygate_celery_task_wait_seconds{queue, task}`.
- A worker starting a task from a queue, and a task succeeding, leave a timestamp in the
  shared cache (Redis in production), so that `/metrics` can say, whichever process answers
  and wherever the workers run, when a queue was last consumed and when each periodic task
  (the recovery sweeps, the health checks) last ran to the end. Each process writes a given
  timestamp at most once every few seconds: the alerts that read them count in minutes.

Nothing here may fail a task: a missing header or an unreachable cache only loses a sample.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import BaseCache, caches

from core.metrics import TASK_WAIT

logger = logging.getLogger(__name__)

PUBLISHED_AT_HEADER = "paygate_published_at"
# Per process and key, the cache is written at most this often.
_STAMP_EVERY_SECONDS = 5.0
# Long enough for any alert to look back; short enough that a queue gone for good fades away.
_STAMP_TTL_SECONDS = 7 * 24 * 3600
_last_written: dict[str, float] = {}


def _cache() -> BaseCache:
    return caches[settings.PAYGATE_BREAKER_CACHE]


def _queue_key(queue: str) -> str:
    return f"monitoring:queue_consumed:{queue}"


def _task_key(task: str) -> str:
    return f"monitoring:task_succeeded:{task}"


def _stamp(key: str) -> None:
    now = time.monotonic()
    if now - _last_written.get(key, float("-inf")) < _STAMP_EVERY_SECONDS:
        return
    _last_written[key] = now
    try:
        _cache().set(key, time.time(), timeout=_STAMP_TTL_SECONDS)
    except Exception:
        logger.warning("could not record a monitoring timestamp", extra={"task": key}, exc_info=True)


def _read(keys: dict[str, str]) -> dict[str, float]:
    """{name: timestamp}; {} if the cache cannot be read.

    A key that holds nothing yet (never written, or the cache was emptied) is set to now,
    once, by whoever reads it first: from then on it says "not since monitoring looked",
    and an alert waits as long for it as for a queue or task that stopped moving at that
    time, instead of firing at once (a daily task) or never (a queue no worker ever took).
    """
    try:
        cache = _cache()
        found = cache.get_many(list(keys.values()))
        for key in set(keys.values()) - set(found):
            cache.add(key, time.time(), timeout=_STAMP_TTL_SECONDS)
            found[key] = cache.get(key)
    except Exception:
        logger.warning("could not read the monitoring timestamps", exc_info=True)
        return {}
    return {name: float(found[key]) for name, key in keys.items() if found.get(key) is not None}


def queues_last_consumed(queues: Iterable[str]) -> dict[str, float]:
    """Per queue, the unix time a worker last started a task from it (or monitoring first looked)."""
    return _read({queue: _queue_key(queue) for queue in queues})


def tasks_last_succeeded(tasks: Iterable[str]) -> dict[str, float]:
    """Per task name, the unix time a run of it last succeeded (or monitoring first looked)."""
    return _read({task: _task_key(task) for task in tasks})


def _timestamp(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


def task_started(task: Any) -> None:
    """A worker starts `task`: observe how long it waited, and mark its queue as consumed."""
    request = getattr(task, "request", None)
    delivery_info = getattr(request, "delivery_info", None) or {}
    queue = str(delivery_info.get("routing_key") or task.app.conf.task_default_queue)
    _stamp(_queue_key(queue))
    published = _timestamp(getattr(request, PUBLISHED_AT_HEADER, None))
    if published is None:
        return  # published by a process that does not stamp (or by hand)
    eta = _timestamp(getattr(request, "eta", None))
    waited_since = max(published, eta) if eta is not None else published
    TASK_WAIT.labels(queue=queue, task=str(getattr(task, "name", "") or "unknown")).observe(
        max(time.time() - waited_since, 0.0)
    )


def connect_celery_metrics() -> None:
    from celery.signals import before_task_publish, task_prerun, task_success

    @before_task_publish.connect(weak=False)
    def _stamp_publication(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if headers is not None:
            headers[PUBLISHED_AT_HEADER] = time.time()

    @task_prerun.connect(weak=False)
    def _started(task: Any = None, **kwargs: Any) -> None:
        try:
            task_started(task)
        except Exception:
            logger.warning("could not observe a task's start", exc_info=True)

    @task_success.connect(weak=False)
    def _succeeded(sender: Any = None, **kwargs: Any) -> None:
        name = getattr(sender, "name", None)
        if name:
            _stamp(_task_key(str(name)))
