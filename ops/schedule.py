"""The periodic tasks celery-beat runs. A migration creates them; operators edit them in the admin."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django_celery_beat.models import PeriodicTask


def periodic_tasks() -> list[tuple[str, str, int]]:
    """(name, task, every N seconds)."""
    return [
        ("Gateway health checks", "gateways.check_health_all", settings.PAYGATE_HEALTH_CHECK_INTERVAL_SECONDS),
        ("Sweep due transactions", "payments.sweep_due", int(settings.PAYGATE_SWEEP_INTERVAL_SECONDS)),
        ("Sweep unapplied callbacks", "callbacks.sweep_unapplied", 30),
        ("Sweep due webhook deliveries", "webhooks.sweep", settings.PAYGATE_WEBHOOK_SWEEP_INTERVAL_SECONDS),
        (
            "Purge expired payment details",
            "payments.purge_payment_details",
            settings.PAYGATE_PAYMENT_DETAILS_PURGE_INTERVAL_SECONDS,
        ),
    ]


def periodic_tasks_ensure(*, periodic_task_model: Any, interval_model: Any) -> None:
    """Create the periodic tasks that are missing; ones that exist (perhaps edited) are kept."""
    for name, task, seconds in periodic_tasks():
        schedule, _ = interval_model.objects.get_or_create(every=max(int(seconds), 1), period="seconds")
        periodic_task_model.objects.get_or_create(name=name, defaults={"task": task, "interval": schedule})


def periodic_task_intervals() -> dict[str, float]:
    """Task name → seconds between runs, for the enabled periodic tasks on an interval schedule."""
    intervals: dict[str, float] = {}
    for task in PeriodicTask.objects.filter(enabled=True, interval__isnull=False).select_related("interval"):
        seconds = task.interval.schedule.run_every.total_seconds()
        # Two entries for one task: the most frequent one says when it should last have run.
        intervals[task.task] = min(seconds, intervals.get(task.task, seconds))
    return intervals
