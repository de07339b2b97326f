"""The floor's Celery task: a no-op on its own queue, so a backlog of it can be drained and timed."""

from __future__ import annotations

from celery import shared_task

FLOOR_QUEUE = "bench_floor"


@shared_task(name="bench.floor.noop", acks_late=True, ignore_result=True)
def noop(row_id: str) -> None:
    """Does nothing: what is left is Celery's own cost per task (fetch, decode, ack)."""
    return None


def publish_noop(row_id: object) -> None:
    noop.apply_async(args=[str(row_id)], queue=FLOOR_QUEUE)
