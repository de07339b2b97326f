"""Options and helpers shared by the pipeline's Celery tasks.

The broker is reached through Celery's current app: core imports no project module.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, TypedDict, cast

from django.conf import settings
from django.db import DatabaseError

logger = logging.getLogger(__name__)


# At-least-once: acknowledged after the task ran. A database outage is retried with
# backoff; anything else is a bug and goes to the log with its traceback.
class PipelineTaskOptions(TypedDict):
    acks_late: bool
    autoretry_for: tuple[type[BaseException], ...]
    retry_backoff: bool
    retry_backoff_max: int
    retry_kwargs: dict[str, Any]


PIPELINE_TASK: PipelineTaskOptions = {
    "acks_late": True,
    "autoretry_for": (DatabaseError,),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "retry_kwargs": {"max_retries": 10},
}


# Tasks at this priority or more urgent (lower) are the ones Redis serves first.
URGENT_PRIORITY = 3


def route_by_priority(
    name: str, args: Any, kwargs: Any, options: dict[str, Any], task: Any = None, **kw: Any
) -> dict[str, str] | None:
    """Celery router for RabbitMQ, whose quorum queues have no priorities: the tasks that Redis
    serves first (health checks, sweeps, callbacks: priority 3 and below) go to the urgent queue,
    consumed by every worker beside the default one; the rest stay on the default queue."""
    if options.get("queue"):
        return None  # a queue chosen by the caller wins
    priority = options.get("priority")
    if priority is None and task is not None:
        priority = getattr(task, "priority", None)
    if priority is not None and int(priority) <= URGENT_PRIORITY:
        return {"queue": settings.PAYGATE_URGENT_QUEUE}
    return None


def pipeline_backlog(queue: str | None = None) -> int | None:
    """Tasks waiting in the pipeline's queue (or `queue`) now; None if the broker cannot say."""
    from celery import current_app as app
    from kombu.exceptions import ChannelError
    from kombu.transport.virtual import Channel as VirtualChannel

    try:
        with app.connection_for_read() as connection:
            # Redis and the embedded filesystem transport are kombu virtual transports; RabbitMQ
            # answers the same passive declare natively. Either way the count is of waiting messages.
            channel = cast(VirtualChannel, connection.default_channel)
            missing: tuple[type[BaseException], ...] = (ChannelError, *connection.channel_errors)
            try:
                declared = channel.queue_declare(queue=queue or app.conf.task_default_queue, passive=True)
            except missing:  # an empty queue does not exist on Redis
                return 0
            return int(declared.message_count)
    except Exception:
        logger.warning("could not read the pipeline queue's length", exc_info=True)
        return None


def sweep_cutoff(now: datetime) -> datetime:
    """Republish what was due at or before this: now, or a while ago when the queue is backlogged.

    Under a backlog a due transaction (or callback) is almost always still queued behind the
    others; publishing it again would only add a duplicate ahead of the real work.
    """
    backlog = pipeline_backlog()
    if backlog is None or backlog < settings.PAYGATE_SWEEP_BACKLOG_LIMIT:
        return now
    logger.info("pipeline queue holds %d tasks; republishing only what is overdue", backlog)
    return now - timedelta(seconds=settings.PAYGATE_SWEEP_MAX_DEFER_SECONDS)


def queue_names() -> list[str]:
    """The queues tasks are sent to: the default one, declared ones, and any a task or route names."""
    from celery import current_app as app

    names = {app.conf.task_default_queue}
    names.update(queue.name for queue in app.conf.task_queues or ())
    routes = app.conf.task_routes
    if isinstance(routes, dict):
        names.update(route["queue"] for route in routes.values() if isinstance(route, dict) and route.get("queue"))
    names.update(getattr(task, "queue", None) or app.conf.task_default_queue for task in app.tasks.values())
    return sorted(str(name) for name in names)
