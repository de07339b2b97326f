"""The refund rules (CONTRACT §9) as a table: pure, tested without a database.

Processing following them is tested end to end in `test_refunds.py` and `test_refund_expiry.py`.
"""

from __future__ import annotations

import pytest

from gateways.types import Outcome, RefundLookupStatus
from payments.failover import REFUND_FAILOVER_TABLE, RefundNextStep, refund_failover_next, refund_failover_wait

A, D, N, U = Outcome.ACCEPTED, Outcome.DECLINED, Outcome.NOT_SUBMITTED, Outcome.UNKNOWN
S = RefundLookupStatus
R = RefundNextStep


@pytest.mark.parametrize(
    ("outcome", "lookup", "past_deadline", "expected"),
    [
        # after the call
        pytest.param(A, None, False, R.PROCESSING, id="accepted-processing"),
        pytest.param(D, None, False, R.DECLINED, id="declined-fails"),
        pytest.param(N, None, False, R.WAIT, id="not-submitted-same-gateway-later"),
        pytest.param(U, None, False, R.LOOK_UP, id="unknown-look-up-first"),
        pytest.param(N, None, True, R.WAIT, id="not-submitted-past-deadline-the-wait-rule-decides"),
        # the look-up of a pending refund (its call's outcome unknown)
        pytest.param(U, S.NOT_FOUND, False, R.SEND_AGAIN, id="pending-never-received-send-again"),
        pytest.param(U, S.ACCEPTED, False, R.PROCESSING, id="pending-found-accepted"),
        pytest.param(U, S.SUCCEEDED, False, R.SUCCEEDED, id="pending-found-succeeded"),
        pytest.param(U, S.FAILED, False, R.FAILED, id="pending-found-failed"),
        pytest.param(U, S.UNAVAILABLE, False, R.LOOK_UP_LATER, id="pending-look-up-fails-look-up-later"),
        # the reconciliation look-up of a processing refund
        pytest.param(A, S.NOT_FOUND, False, R.REVIEW, id="processing-not-found-needs-review"),
        pytest.param(A, S.ACCEPTED, False, R.PROCESSING, id="processing-still-accepted"),
        pytest.param(A, S.SUCCEEDED, False, R.SUCCEEDED, id="processing-found-succeeded"),
        pytest.param(A, S.FAILED, False, R.FAILED, id="processing-found-failed"),
        pytest.param(A, S.UNAVAILABLE, False, R.LOOK_UP_LATER, id="processing-look-up-fails-look-up-later"),
        # past the processing deadline only a failed look-up changes: review, never a failure
        pytest.param(A, S.UNAVAILABLE, True, R.OVERDUE, id="processing-look-up-fails-past-deadline-overdue"),
        pytest.param(U, S.UNAVAILABLE, True, R.OVERDUE, id="pending-look-up-fails-past-deadline-overdue"),
        pytest.param(A, S.ACCEPTED, True, R.PROCESSING, id="processing-still-accepted-past-deadline"),
        pytest.param(A, S.NOT_FOUND, True, R.REVIEW, id="processing-not-found-past-deadline-review"),
        pytest.param(A, S.SUCCEEDED, True, R.SUCCEEDED, id="processing-found-succeeded-past-deadline"),
    ],
)
def test_refund_failover_next(
    outcome: Outcome, lookup: RefundLookupStatus | None, past_deadline: bool, expected: RefundNextStep
) -> None:
    assert refund_failover_next(outcome, lookup, past_deadline=past_deadline) == expected


@pytest.mark.parametrize(
    ("past_deadline", "expected"),
    [
        pytest.param(False, R.WAIT, id="before-the-deadline-wait-for-the-same-gateway"),
        pytest.param(True, R.EXPIRE, id="past-the-deadline-expired"),
    ],
)
def test_refund_failover_wait(past_deadline: bool, expected: RefundNextStep) -> None:
    assert refund_failover_wait(past_deadline=past_deadline) == expected


@pytest.mark.parametrize("outcome", [D, N], ids=str)
@pytest.mark.parametrize("lookup", list(RefundLookupStatus), ids=str)
def test_a_refund_call_that_needs_no_look_up_has_no_look_up_rule(outcome: Outcome, lookup: RefundLookupStatus) -> None:
    with pytest.raises(ValueError):
        refund_failover_next(outcome, lookup)


def test_the_refund_table_covers_every_outcome_and_every_look_up_of_a_pending_or_processing_refund() -> None:
    expected = {(o, None) for o in Outcome} | {(o, s) for o in (A, U) for s in RefundLookupStatus}
    assert set(REFUND_FAILOVER_TABLE) == expected


def test_no_refund_rule_fails_over_or_fails_by_our_clock_alone() -> None:
    """A refund has one gateway, and one it may have accepted is never failed by a deadline."""
    steps = {refund_failover_next(o, s, past_deadline=p) for (o, s) in REFUND_FAILOVER_TABLE for p in (False, True)}
    assert R.EXPIRE not in steps
