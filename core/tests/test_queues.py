"""Routing on RabbitMQ, whose quorum queues have no priorities: what Redis serves first gets a queue of its own."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.conf import settings

from core.queues import route_by_priority


@pytest.mark.parametrize(
    ("priority", "queue"),
    [(0, settings.PAYGATE_URGENT_QUEUE), (3, settings.PAYGATE_URGENT_QUEUE), (5, None), (None, None)],
    ids=["sweeps-and-health-checks", "callbacks", "payments", "no-priority"],
)
def test_urgent_tasks_go_to_their_own_queue(priority: int | None, queue: str | None) -> None:
    route = route_by_priority("any.task", (), {}, {"priority": priority})
    assert (route or {}).get("queue") == queue


def test_the_task_own_priority_counts_when_the_message_has_none() -> None:
    route = route_by_priority("gateways.check_health", (), {}, {}, task=SimpleNamespace(priority=0))
    assert route == {"queue": settings.PAYGATE_URGENT_QUEUE}


def test_a_queue_chosen_by_the_caller_wins() -> None:
    assert route_by_priority("any.task", (), {}, {"priority": 0, "queue": "elsewhere"}) is None
