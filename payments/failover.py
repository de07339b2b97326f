"""The failover rules (CONTRACT §3) as tables: what a transaction, or a refund (CONTRACT §9), does next.

Pure functions, no database, no clock, no gateway: `processing.py` (`refunds/processing.py`) gathers the facts
(what the call said, what the look-up said, whether a deadline has passed, whether a
route is left), asks here, and applies the answer under the transaction's (refund's) row lock.

What we know of the call is the gateway's outcome, except that a call whose attempt is
already known to be accepted (a callback came first, or an earlier answer said so) counts
as accepted whatever this answer says: the gateway has the payment, so nothing may fail
over away from it.
"""

from __future__ import annotations

import enum

from gateways.types import LookupStatus, Outcome, RefundLookupStatus


class NextStep(enum.StrEnum):
    """What happens next to a transaction that is not final yet."""

    # Follow the gateway: it has the payment. `processing` on that gateway until its
    # callback or a look-up settles it.
    PROCESSING = "processing"
    # The gateway has the payment and waits for the customer (CONTRACT §11): `requires_action`
    # on that gateway, never failed over, until the customer acts or the action's deadline.
    REQUIRES_ACTION = "requires_action"
    COMPLETED = "completed"  # the gateway says completed
    FAILED = "failed"  # the gateway says failed: `failed` / `gateway_failed`
    # The customer's answer: `failed` / `declined`; no other gateway is tried.
    DECLINED = "declined"
    FAIL_OVER = "fail_over"  # the gateway did not act, or never received it: the next route, at once
    LOOK_UP = "look_up"  # it may have acted: ask that gateway before anything else
    # Still unsettled: stay `processing` on that gateway and look it up again later.
    LOOK_UP_LATER = "look_up_later"
    EXPIRE = "expire"  # unsettled past the processing deadline: `failed` / `expired`, needs review
    CALL = "call"  # a route can take it now: commit an attempt, then call that gateway
    RETRY_ROUTES = "retry_routes"  # no route can take it now: stay `pending`, try them all again with backoff
    NO_GATEWAY = "no_gateway"  # past the routing deadline: `failed` / `no_gateway_available`


# (what we know of the call, what its look-up said; None before any look-up) → next step.
FAILOVER_TABLE: dict[tuple[Outcome, LookupStatus | None], NextStep] = {
    (Outcome.ACCEPTED, None): NextStep.PROCESSING,
    (Outcome.DECLINED, None): NextStep.DECLINED,
    (Outcome.NOT_SUBMITTED, None): NextStep.FAIL_OVER,
    (Outcome.UNKNOWN, None): NextStep.LOOK_UP,
    (Outcome.UNKNOWN, LookupStatus.NOT_FOUND): NextStep.FAIL_OVER,
    (Outcome.UNKNOWN, LookupStatus.ACCEPTED): NextStep.PROCESSING,
    (Outcome.UNKNOWN, LookupStatus.COMPLETED): NextStep.COMPLETED,
    (Outcome.UNKNOWN, LookupStatus.FAILED): NextStep.FAILED,
    (Outcome.UNKNOWN, LookupStatus.UNAVAILABLE): NextStep.LOOK_UP_LATER,
    # The reconciliation sweep looks up accepted payments whose callback has not come.
    (Outcome.ACCEPTED, LookupStatus.ACCEPTED): NextStep.PROCESSING,
    (Outcome.ACCEPTED, LookupStatus.COMPLETED): NextStep.COMPLETED,
    (Outcome.ACCEPTED, LookupStatus.FAILED): NextStep.FAILED,
    (Outcome.ACCEPTED, LookupStatus.UNAVAILABLE): NextStep.LOOK_UP_LATER,
    # The gateway said it had it: a look-up that cannot find it is not believed over that.
    (Outcome.ACCEPTED, LookupStatus.NOT_FOUND): NextStep.LOOK_UP_LATER,
    # Received, and waiting for the customer.
    (Outcome.UNKNOWN, LookupStatus.ACTION_REQUIRED): NextStep.REQUIRES_ACTION,
    (Outcome.ACCEPTED, LookupStatus.ACTION_REQUIRED): NextStep.REQUIRES_ACTION,
}

# A look-up that leaves the transaction on its gateway unsettled; past the deadline it expires.
_UNSETTLED = frozenset({NextStep.PROCESSING, NextStep.LOOK_UP_LATER, NextStep.REQUIRES_ACTION})


def failover_next(outcome: Outcome, lookup: LookupStatus | None = None, *, past_deadline: bool = False) -> NextStep:
    """The next step after a gateway call (`lookup` None) or after a status look-up of it.

    `past_deadline`: the processing deadline has passed and the caller expires what a
    look-up leaves unsettled (the reconciliation sweep does; processing's own look-ups,
    right after the call, never expire anything).

    Raises ValueError for a look-up of a call that needs none (declined, not submitted).
    """
    try:
        step = FAILOVER_TABLE[(outcome, lookup)]
    except KeyError:
        raise ValueError(f"no failover rule for a {outcome} call looked up as {lookup}") from None
    if lookup is not None and past_deadline and step in _UNSETTLED:
        return NextStep.EXPIRE
    return step


def failover_route(*, past_deadline: bool, route_found: bool) -> NextStep:
    """The next step of a `pending` transaction that needs a route (new, or after a fail-over).

    The routing deadline wins over a usable route: past it, nothing more is sent.
    """
    if past_deadline:
        return NextStep.NO_GATEWAY
    return NextStep.CALL if route_found else NextStep.RETRY_ROUTES


# --- refunds ---------------------------------------------------------------------------------
# A refund goes to the deposit's gateway only, with its own id as the reference on every try:
# there is no other gateway to fail over to, so "did not act" means the same gateway again,
# later, and a refund the gateway may have accepted never fails by our clock alone.


class RefundNextStep(enum.StrEnum):
    """What happens next to a refund that is not final yet."""

    PROCESSING = "processing"  # the gateway has it: `processing` until its callback or a look-up settles it
    SUCCEEDED = "succeeded"  # the gateway says succeeded
    FAILED = "failed"  # the gateway says failed: `failed` / `gateway_failed`
    DECLINED = "declined"  # the gateway refused it: `failed` / `declined`
    WAIT = "wait"  # the gateway did not act (or cannot be called now): the same gateway again, with backoff
    EXPIRE = "expire"  # still not taken past the no-gateway deadline: `failed` / `expired`
    LOOK_UP = "look_up"  # it may have acted: ask it before anything else
    SEND_AGAIN = "send_again"  # never received: send again now, with the same reference
    # Still unsettled: stay (or become) `processing`, and look it up again later.
    LOOK_UP_LATER = "look_up_later"
    # Unsettled past the processing deadline: stays `processing` (it is still counted against the
    # deposit, and still looked up) and needs review; failing it could let it be paid twice.
    OVERDUE = "overdue"
    # The gateway accepted it once and now does not know it: stays `processing`, needs review.
    REVIEW = "review"


# (what we know of the refund at its gateway, what a look-up said; None before any look-up) → next step.
# What we know: ACCEPTED once it is `processing`, UNKNOWN while `pending` (a look-up of a pending refund
# follows a call whose outcome was unknown or that was interrupted).
REFUND_FAILOVER_TABLE: dict[tuple[Outcome, RefundLookupStatus | None], RefundNextStep] = {
    (Outcome.ACCEPTED, None): RefundNextStep.PROCESSING,
    (Outcome.DECLINED, None): RefundNextStep.DECLINED,
    (Outcome.NOT_SUBMITTED, None): RefundNextStep.WAIT,
    (Outcome.UNKNOWN, None): RefundNextStep.LOOK_UP,
    (Outcome.UNKNOWN, RefundLookupStatus.NOT_FOUND): RefundNextStep.SEND_AGAIN,
    (Outcome.UNKNOWN, RefundLookupStatus.ACCEPTED): RefundNextStep.PROCESSING,
    (Outcome.UNKNOWN, RefundLookupStatus.SUCCEEDED): RefundNextStep.SUCCEEDED,
    (Outcome.UNKNOWN, RefundLookupStatus.FAILED): RefundNextStep.FAILED,
    (Outcome.UNKNOWN, RefundLookupStatus.UNAVAILABLE): RefundNextStep.LOOK_UP_LATER,
    # The reconciliation sweep looks up accepted refunds whose callback has not come.
    (Outcome.ACCEPTED, RefundLookupStatus.NOT_FOUND): RefundNextStep.REVIEW,
    (Outcome.ACCEPTED, RefundLookupStatus.ACCEPTED): RefundNextStep.PROCESSING,
    (Outcome.ACCEPTED, RefundLookupStatus.SUCCEEDED): RefundNextStep.SUCCEEDED,
    (Outcome.ACCEPTED, RefundLookupStatus.FAILED): RefundNextStep.FAILED,
    (Outcome.ACCEPTED, RefundLookupStatus.UNAVAILABLE): RefundNextStep.LOOK_UP_LATER,
}


def refund_failover_next(
    outcome: Outcome, lookup: RefundLookupStatus | None = None, *, past_deadline: bool = False
) -> RefundNextStep:
    """The next step of a refund after a gateway call (`lookup` None) or after a look-up of it.

    `past_deadline`: the processing deadline has passed and the caller is the reconciliation
    sweep; what a failed look-up leaves unsettled then needs review (it never expires).

    Raises ValueError for a look-up of a call that needs none (declined, not submitted).
    """
    try:
        step = REFUND_FAILOVER_TABLE[(outcome, lookup)]
    except KeyError:
        raise ValueError(f"no refund rule for a {outcome} call looked up as {lookup}") from None
    if past_deadline and step == RefundNextStep.LOOK_UP_LATER:
        return RefundNextStep.OVERDUE
    return step


def refund_failover_wait(*, past_deadline: bool) -> RefundNextStep:
    """The next step of a `pending` refund its gateway did not take: wait for it, or past the deadline expire."""
    return RefundNextStep.EXPIRE if past_deadline else RefundNextStep.WAIT
