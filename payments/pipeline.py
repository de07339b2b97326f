"""What the two pipelines share: transactions' (`processing`) and refunds' (`refunds.processing`).

Both run the same loop of short locked steps with the gateway call between them, so they share
its parts here: the steps a run can take next, the call window after which an unanswered try is
presumed abandoned, the backoff of waiting rounds, the callback address a gateway is given, the
publish of a task by its name, the replay of a request whose INSERT collided on its idempotency
key, and the note of the status a row had when it was locked, which its state owner compares
with to know whether a save changes the status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from celery import current_app
from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from gateways.models import Gateway

# Slack added to a gateway's timeouts before an unanswered try is presumed abandoned.
CALL_GRACE_SECONDS = 5.0
# A call not started within the grace period after its try was committed is not sent at all:
# by the end of the call window another run may treat the try as abandoned, look it up, find
# nothing and send again (or fail over), and a late send would then pay a second time.
NOT_SENT_IN_TIME = "not_sent_in_time"

# The status a locked row had when it was read (or last saved): what its state owner's save compares with.
STATUS_AT_LOCK = "_paygate_status_at_lock"

_Result = TypeVar("_Result")


@dataclass(frozen=True, slots=True)
class Done:
    """Nothing more to do now: the row is final, or waits for something other than this run."""


@dataclass(frozen=True, slots=True)
class RetryLater:
    """Run again after `countdown` seconds (0: decide again at once)."""

    countdown: float


@dataclass(frozen=True, slots=True)
class Continue:
    """Decide again under the lock, at once."""


class _HasStatus(Protocol):
    status: str


def call_window(gateway: Gateway) -> float:
    """How long a committed try may wait for its gateway's answer before it is looked up."""
    return gateway.connect_timeout + gateway.read_timeout + CALL_GRACE_SECONDS


def backoff(round_: int) -> float:
    """The wait before waiting round `round_` (1, 2, ...) tries again: doubling, capped."""
    base = settings.PAYGATE_RETRY_BACKOFF_BASE_SECONDS
    return float(min(base * (2.0 ** max(round_ - 1, 0)), settings.PAYGATE_RETRY_BACKOFF_MAX_SECONDS))


def callback_url(gateway: Gateway) -> str:
    return f"{settings.PAYGATE_PUBLIC_URL}/api/v1/callbacks/{gateway.code}"


def sent_too_late(committed_at: datetime) -> bool:
    """Whether this process stalled (paused, swapped out) between committing a try and sending it."""
    return (timezone.now() - committed_at).total_seconds() > CALL_GRACE_SECONDS


def task_publish(
    task_name: str, object_id: object, *, countdown: float | None, log: logging.Logger, failure: str, key: str
) -> None:
    """Queue the task of that name for one row. A failed publish is logged on the caller's `log`
    (`failure`, the id under `key`), not raised: the recovery sweep republishes.

    The task is found by its name in Celery's registry, so services never import the tasks
    module that calls them.
    """
    try:
        task = current_app.tasks[task_name]
        if countdown is None:
            task.apply_async(args=(str(object_id),))
        else:
            task.apply_async(args=(str(object_id),), countdown=countdown)
    except Exception:
        log.exception(failure, extra={key: str(object_id)})


def insert_or_replay(
    insert: Callable[[], _Result],
    *,
    idempotency_key: str | None,
    replay: Callable[[str], _Result | None],
) -> _Result:
    """Run `insert`; if its INSERT collides on the idempotency key, answer the earlier request's replay.

    The unique constraint decides: concurrent requests with one key make one row, and the
    losers replay it (or get `replay`'s conflict for a different body).
    """
    try:
        return insert()
    except IntegrityError:
        if idempotency_key is None:
            raise
        replayed = replay(idempotency_key)
        if replayed is None:
            raise
        return replayed


def status_lock_note(row: _HasStatus) -> None:
    """Note the status of a row just locked (or saved): its state owner's save compares with it."""
    setattr(row, STATUS_AT_LOCK, row.status)
