"""The parts both pipelines share (`payments/pipeline.py`), without a database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError
from django.test import override_settings
from django.utils import timezone

from payments.pipeline import (
    CALL_GRACE_SECONDS,
    STATUS_AT_LOCK,
    backoff,
    insert_or_replay,
    sent_too_late,
    status_lock_note,
)


def _collides() -> str:
    raise IntegrityError("duplicate key value violates unique constraint")


def test_an_insert_that_does_not_collide_is_its_own_answer() -> None:
    assert insert_or_replay(lambda: "new", idempotency_key="k", replay=lambda key: "replayed") == "new"


def test_a_collision_on_the_key_replays_the_earlier_request() -> None:
    seen: list[str] = []

    def replay(key: str) -> str:
        seen.append(key)
        return "replayed"

    assert insert_or_replay(_collides, idempotency_key="k", replay=replay) == "replayed"
    assert seen == ["k"]


@pytest.mark.parametrize(
    ("idempotency_key", "replayed"),
    [pytest.param(None, "unused", id="no-key-nothing-to-replay"), pytest.param("k", None, id="no-earlier-row")],
)
def test_a_collision_that_is_not_a_replay_is_raised(idempotency_key: str | None, replayed: str | None) -> None:
    with pytest.raises(IntegrityError):
        insert_or_replay(_collides, idempotency_key=idempotency_key, replay=lambda key: replayed)


@override_settings(PAYGATE_RETRY_BACKOFF_BASE_SECONDS=2, PAYGATE_RETRY_BACKOFF_MAX_SECONDS=10)
def test_backoff_doubles_each_round_up_to_its_cap() -> None:
    assert [backoff(r) for r in (0, 1, 2, 3, 4, 5)] == [2.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_a_try_committed_longer_ago_than_the_grace_is_not_sent() -> None:
    now = timezone.now()
    assert not sent_too_late(now)
    assert sent_too_late(now - timedelta(seconds=CALL_GRACE_SECONDS + 1))


def test_the_lock_note_is_the_status_as_read() -> None:
    class Row:
        status = "pending"

    row = Row()
    status_lock_note(row)
    row.status = "failed"
    assert getattr(row, STATUS_AT_LOCK) == "pending"
