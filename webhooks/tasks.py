"""Celery tasks of webhook delivery: none do the delivering any more (webhooks.dispatcher does)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="webhooks.sweep", ignore_result=True, priority=0)
def sweep() -> int:
    """Kept so that a periodic-task row written by an earlier version finds its task: the dispatcher
    polls the outbox itself, so there is nothing left to sweep."""
    return 0
