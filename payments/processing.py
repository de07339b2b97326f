"""The processing pipeline: route a pending transaction to a gateway and apply the failover rules.

Every step that changes state is a short block holding the transaction's row lock;
gateway calls happen between those blocks, never inside one. An attempt is committed
before its call, so a crash mid-call leaves a trace that the next run resolves with a
status look-up instead of paying twice. Every function here is safe to run twice and
concurrently with itself.

What follows a call, a look-up or a routing pass is decided by the failover table in
`failover.py` (CONTRACT §3); the routes are ordered by `gateways.routing`. This module
gathers the facts for them and applies their answers under the lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from core.logs import bind, masked_reason
from gateways.adapters import get_adapter
from gateways.breaker import BreakerState, breaker_permit, breaker_record_fault, breaker_record_success
from gateways.metrics import ATTEMPTS, GATEWAY_LATENCY, GATEWAY_PAYMENTS
from gateways.models import Gateway
from gateways.selectors import gateway_credentials, gateway_get, route_ranking
from gateways.services import route_score_record
from gateways.types import CustomerAction, LookupResult, LookupStatus, Outcome, PaymentRequest, PaymentResult

from .actions import pay_return_url, routing_started_at
from .collect import collect_expire_if_due
from .failover import NextStep, failover_next, failover_route
from .methods import gateway_payment_method
from .models import (
    Attempt,
    AttemptOutcome,
    FailureReason,
    Transaction,
    TransactionStatus,
    TransactionType,
)
from .money import format_amount
from .pipeline import NOT_SENT_IN_TIME, Continue, Done, RetryLater, backoff, call_window, callback_url, sent_too_late
from .services import (
    TransactionChanged,
    transaction_current_attempt,
    transaction_lock,
    transaction_resume,
    transaction_save,
    transaction_transition,
)

logger = logging.getLogger(__name__)

# A run never loops forever, even against a misbehaving gateway.
_MAX_STEPS = 20
# How an accepted payment can end, as its route's score counts it.
_SCORED_ENDS = frozenset({NextStep.COMPLETED, NextStep.FAILED, NextStep.EXPIRE})


@dataclass(frozen=True, slots=True)
class Call:
    attempt_id: str
    attempt_created_at: datetime
    gateway: Gateway
    request: PaymentRequest
    probe: bool = False  # the half-open breaker's single probe: its success closes the breaker
    written: Transaction | None = None  # the row as the attempt's step wrote it (`transaction_resume`)


@dataclass(frozen=True, slots=True)
class Lookup:
    attempt_id: str
    gateway: Gateway


Step = Done | RetryLater | Call | Lookup | Continue


def transaction_attempt_current(txn: Transaction) -> Attempt | None:
    """The transaction's latest attempt (the one a callback or a look-up may settle), if any."""
    return transaction_current_attempt(txn)


def _payment_request(txn: Transaction, attempt: Attempt) -> PaymentRequest:
    return PaymentRequest(
        reference=str(attempt.pk),
        transaction_id=str(txn.pk),
        type=txn.type,
        amount=Decimal(format_amount(txn.amount, txn.currency)),
        currency=txn.currency,
        country=txn.country_id,
        customer_id=txn.customer.reference,
        callback_url=callback_url(attempt.gateway),
        return_url=pay_return_url(txn) if txn.type == TransactionType.DEPOSIT else None,
        **gateway_payment_method(txn),
    )


# The action's own deadline, kept with it (CONTRACT §11): unix seconds.
_ACTION_DEADLINE_KEY = "deadline"


def _require_action(txn: Transaction, action: CustomerAction | None) -> None:
    """Wait for the customer on this gateway; at the action's deadline the sweep looks it up once more."""
    now = timezone.now()
    if txn.status == TransactionStatus.REQUIRES_ACTION and txn.action and _ACTION_DEADLINE_KEY in txn.action:
        deadline = float(txn.action[_ACTION_DEADLINE_KEY])
    else:
        deadline = (now + timedelta(seconds=settings.PAYGATE_ACTION_DEADLINE_SECONDS)).timestamp()
    if txn.status != TransactionStatus.REQUIRES_ACTION:
        transaction_transition(txn, to=TransactionStatus.REQUIRES_ACTION, save=False)
    shown = action.as_dict() if action is not None else {k: v for k, v in (txn.action or {}).items()}
    txn.action = {**shown, _ACTION_DEADLINE_KEY: deadline}
    txn.next_check_at = max(datetime.fromtimestamp(deadline, tz=now.tzinfo), now)


def transaction_failure_reason(txn: Transaction, reason: str | None) -> str:
    """A failed payment's reason: the customer cancelled, or failed authentication while asked to act."""
    if reason == FailureReason.CANCELLED:
        return FailureReason.CANCELLED
    if reason == FailureReason.DECLINED and txn.status == TransactionStatus.REQUIRES_ACTION:
        return FailureReason.DECLINED
    return FailureReason.GATEWAY_FAILED


def _route_pick(
    txn: Transaction, *, tried_any: bool
) -> tuple[Gateway | None, BreakerState | None, dict[str, Any] | None]:
    """The gateway to call now, the breaker state it goes out under and why it was chosen; Nones if none can."""
    tried = (
        set(txn.attempts.filter(route_round=txn.route_round).values_list("gateway_id", flat=True))
        if tried_any
        else set()
    )
    ranking = route_ranking(
        country_code=txn.country_id,
        currency=txn.currency,
        transaction_type=txn.type,
        payment_method=txn.payment_method,
        tried=tried,
    )
    # The breaker is asked last and lazily: in half-open it hands out a single probe.
    permitted = ((route, breaker_permit(route.gateway_id)) for route in ranking.order)
    route, permit = next(((r, p) for r, p in permitted if p is not None), (None, None))
    gateway = gateway_get(route.gateway_id) if route is not None else None
    return gateway, permit, ranking.record(chosen=route) if gateway is not None else None


def _next_step(transaction_id: str) -> Step:
    """Decide, under the row lock, what the transaction needs next; commit a new attempt if a call."""
    with transaction.atomic():
        txn = transaction_lock(transaction_id)
        if txn.status != TransactionStatus.PENDING:
            return Done()
        now = timezone.now()
        if collect_expire_if_due(txn, now=now):
            return Done()  # the customer types the details on the pay page first (CONTRACT §12)
        last = transaction_attempt_current(txn)
        if last is not None and last.outcome == AttemptOutcome.PENDING:
            age = (now - last.created_at).total_seconds()
            window = call_window(last.gateway)
            if age < window:
                # Another run may be mid-call on this attempt: let it finish.
                return RetryLater(countdown=window - age)
            # That run died mid-call; the gateway may or may not have the payment.
            last.outcome = AttemptOutcome.UNKNOWN
            last.error = "interrupted"
            transaction_save(txn, fields=["updated_at"], attempt=last)
            return Lookup(attempt_id=str(last.pk), gateway=last.gateway)
        if last is not None and last.outcome == AttemptOutcome.UNKNOWN:
            return Lookup(attempt_id=str(last.pk), gateway=last.gateway)

        deadline = routing_started_at(txn) + timedelta(seconds=settings.PAYGATE_NO_GATEWAY_DEADLINE_SECONDS)
        past_deadline = now >= deadline
        gateway, permit, routing = (None, None, None) if past_deadline else _route_pick(txn, tried_any=last is not None)
        decision = failover_route(past_deadline=past_deadline, route_found=gateway is not None)
        if decision == NextStep.NO_GATEWAY:
            transaction_transition(txn, to=TransactionStatus.FAILED, failure_reason=FailureReason.NO_GATEWAY_AVAILABLE)
            return Done()
        if decision == NextStep.RETRY_ROUTES or gateway is None:
            # Every usable route did not act, or none is usable now: wait longer each time
            # (a new round also forgets which gateways were tried).
            txn.route_round += 1
            countdown = min(backoff(txn.route_round), max((deadline - now).total_seconds(), 0.0))
            txn.next_check_at = now + timedelta(seconds=countdown + settings.PAYGATE_SWEEP_GRACE_SECONDS)
            transaction_save(txn, fields=["route_round", "next_check_at", "updated_at"])
            logger.info(
                "no gateway available now; retrying in %.1fs",
                countdown,
                extra={"route_round": txn.route_round},
            )
            return RetryLater(countdown=countdown)

        attempt = Attempt(
            transaction=txn,
            number=max(last.number if last is not None else 0, txn.attempt_count) + 1,
            route_round=txn.route_round,
            gateway=gateway,
            routing=routing,
        )
        txn.attempt_count = attempt.number
        txn.next_check_at = now + timedelta(seconds=call_window(gateway) + settings.PAYGATE_SWEEP_GRACE_SECONDS)
        transaction_save(txn, fields=["attempt_count", "next_check_at", "updated_at"], attempt=attempt)
        return Call(
            attempt_id=str(attempt.pk),
            attempt_created_at=attempt.created_at,
            gateway=gateway,
            request=_payment_request(txn, attempt),
            probe=permit == BreakerState.HALF_OPEN,
            written=txn,
        )


def transaction_route_score(
    txn: Transaction, attempt: Attempt, *, success: bool | None, latency_ms: float | None = None
) -> None:
    """What an attempt told about its route, for the success-rate strategy (None: not known yet)."""
    route_score_record(
        gateway_id=attempt.gateway_id,
        country=txn.country_id,
        currency=txn.currency,
        transaction_type=txn.type,
        payment_method=txn.payment_method,
        client_id=txn.client_id,
        success=success,
        latency_ms=latency_ms,
    )


def attempts_if_first(attempt: Attempt) -> list[Attempt] | None:
    """The transaction's attempts when this one is its first and only (most are): no need to read them."""
    return [attempt] if attempt.number == 1 else None


def _lock_attempt(transaction_id: str, attempt_id: str) -> tuple[Transaction, Attempt, bool]:
    """Lock the transaction, then read one of its attempts; also say whether it is the current one."""
    txn = transaction_lock(transaction_id)
    current = transaction_attempt_current(txn)
    if current is not None and str(current.pk) == str(attempt_id):
        return txn, current, True
    attempt = Attempt.objects.select_related("gateway").get(pk=attempt_id, transaction_id=txn.pk)
    return txn, attempt, False


def _accept(
    txn: Transaction,
    attempt: Attempt,
    *,
    payment_id: str | None,
    to: str,
    action: CustomerAction | None = None,
    reason: str | None = None,
) -> None:
    attempt.outcome = AttemptOutcome.ACCEPTED
    if payment_id:
        attempt.gateway_payment_id = payment_id
    txn.gateway = attempt.gateway
    txn.gateway_reference = attempt.gateway_payment_id
    if to == TransactionStatus.REQUIRES_ACTION:
        _require_action(txn, action)
    elif to == TransactionStatus.PROCESSING:
        if txn.status != TransactionStatus.PROCESSING:
            transaction_transition(txn, to=to, save=False)
        txn.next_check_at = timezone.now() + timedelta(seconds=settings.PAYGATE_LOOKUP_FIRST_DELAY_SECONDS)
    elif to == TransactionStatus.FAILED:
        transaction_transition(txn, to=to, failure_reason=transaction_failure_reason(txn, reason), save=False)
    else:
        transaction_transition(txn, to=to, save=False)


def _record_result(
    transaction_id: str,
    attempt_id: str,
    result: PaymentResult,
    *,
    probe: bool = False,
    resumed: Transaction | None = None,
) -> Step:
    """Record a call's answer: on the row as the attempt's step left it (`resumed`), if nobody wrote
    it since (else `TransactionChanged`), or under the row lock."""
    with transaction.atomic():
        if resumed is not None:
            txn, attempt, is_current = resumed, transaction_attempt_current(resumed), True
            if attempt is None or str(attempt.pk) != attempt_id:
                raise TransactionChanged("not the attempt this run added")
        else:
            txn, attempt, is_current = _lock_attempt(transaction_id, attempt_id)
        attempt.latency_ms = result.latency_ms
        attempt.http_status = result.http_status
        # A callback may have got here first and already recorded the accept.
        already_accepted = attempt.outcome == AttemptOutcome.ACCEPTED
        if already_accepted and result.payment_id and attempt.gateway_payment_id not in ("", result.payment_id):
            # That callback named another payment than the gateway's answer: what it applied is in doubt.
            txn.needs_review = True
            logger.warning("the gateway answered with another payment id than its callback named")
        if result.payment_id:
            attempt.gateway_payment_id = result.payment_id
        # A stale attempt, or a transaction already final, records the answer and decides nothing.
        open_ = is_current and not txn.is_final
        step: Step = Done()
        decision = failover_next(Outcome.ACCEPTED if already_accepted else result.outcome)
        if decision == NextStep.PROCESSING:
            attempt.outcome = AttemptOutcome.ACCEPTED
            if open_ and txn.status == TransactionStatus.PENDING:
                to = TransactionStatus.REQUIRES_ACTION if result.action else TransactionStatus.PROCESSING
                _accept(txn, attempt, payment_id=result.payment_id, to=to, action=result.action)
        elif decision == NextStep.DECLINED:
            attempt.outcome = AttemptOutcome.DECLINED
            attempt.error = masked_reason(result.reason, default="declined")
            if open_:
                transaction_transition(
                    txn, to=TransactionStatus.FAILED, failure_reason=FailureReason.DECLINED, save=False
                )
        elif decision == NextStep.FAIL_OVER:
            attempt.outcome = AttemptOutcome.ERROR
            attempt.error = (result.error or "not_submitted")[:100]
            step = Continue() if open_ else Done()
        elif decision == NextStep.LOOK_UP:
            attempt.outcome = AttemptOutcome.UNKNOWN
            attempt.error = (result.error or "unknown")[:100]
            step = Lookup(attempt_id=str(attempt.pk), gateway=attempt.gateway) if open_ else Done()
        else:
            raise AssertionError(f"a gateway call cannot lead to {decision}")
        transaction_save(txn, attempts=attempts_if_first(attempt), attempt=attempt)
    ATTEMPTS.labels(gateway=attempt.gateway.code, outcome=result.outcome).inc()
    if result.latency_ms is not None:
        GATEWAY_LATENCY.labels(gateway=attempt.gateway.code, operation="payment").observe(result.latency_ms / 1000)
        GATEWAY_PAYMENTS.labels(attempt.gateway.code, txn.country_id, result.outcome).observe(result.latency_ms / 1000)
    # For the success-rate strategy: a decline or a fault is a failure; an accept waits for the payment's end.
    transaction_route_score(
        txn,
        attempt,
        success=None if attempt.outcome == AttemptOutcome.ACCEPTED or result.error == NOT_SENT_IN_TIME else False,
        latency_ms=result.latency_ms,
    )
    if result.error == NOT_SENT_IN_TIME:
        pass  # our stall, not the gateway's fault
    elif result.outcome in (Outcome.NOT_SUBMITTED, Outcome.UNKNOWN):
        breaker_record_fault(attempt.gateway_id)
    elif probe:
        breaker_record_success(attempt.gateway_id)
    logger.info(
        "gateway answered %s",
        attempt.outcome,
        extra={"error": attempt.error or None, "latency_ms": result.latency_ms},
    )
    return step


def _record_lookup(
    transaction_id: str, attempt_id: str, result: LookupResult, *, expire_if_unresolved: bool = False
) -> Step:
    """Apply a status look-up of an attempt whose outcome was unknown (or still awaited)."""
    with transaction.atomic():
        txn, attempt, is_current = _lock_attempt(transaction_id, attempt_id)
        if txn.is_final or not is_current:
            return Done()
        txn.lookup_count += 1
        step: Step = Done()
        # Anything short of a known accept is what the look-up was for: an unknown outcome.
        known = Outcome.ACCEPTED if attempt.outcome == AttemptOutcome.ACCEPTED else Outcome.UNKNOWN
        deadline = txn.created_at + timedelta(seconds=settings.PAYGATE_PROCESSING_DEADLINE_SECONDS)
        if txn.status == TransactionStatus.REQUIRES_ACTION and txn.action and _ACTION_DEADLINE_KEY in txn.action:
            # Nobody acted in time: this look-up is the last one (CONTRACT §11).
            deadline = datetime.fromtimestamp(float(txn.action[_ACTION_DEADLINE_KEY]), tz=deadline.tzinfo)
        decision = failover_next(
            known, result.status, past_deadline=expire_if_unresolved and timezone.now() >= deadline
        )
        if result.status == LookupStatus.ACCEPTED:  # received, not finished: the attempt was accepted
            attempt.outcome = AttemptOutcome.ACCEPTED
            if result.payment_id:
                attempt.gateway_payment_id = result.payment_id
        if decision == NextStep.FAIL_OVER:
            attempt.outcome = AttemptOutcome.ERROR
            attempt.error = f"{attempt.error or 'unknown'}; not_received"[:100]
            if txn.status == TransactionStatus.PROCESSING:
                transaction_transition(txn, to=TransactionStatus.PENDING, save=False)
                txn.gateway = None
                txn.gateway_reference = ""
            txn.next_check_at = timezone.now()
            step = Continue()
        elif decision == NextStep.COMPLETED:
            _accept(txn, attempt, payment_id=result.payment_id, to=TransactionStatus.COMPLETED)
        elif decision == NextStep.FAILED:
            _accept(txn, attempt, payment_id=result.payment_id, to=TransactionStatus.FAILED, reason=result.reason)
        elif decision == NextStep.EXPIRE:
            # An action nobody took in time is the customer's silence, not a gateway's: no review.
            txn.needs_review = txn.status != TransactionStatus.REQUIRES_ACTION
            transaction_transition(txn, to=TransactionStatus.FAILED, failure_reason=FailureReason.EXPIRED, save=False)
        elif decision == NextStep.REQUIRES_ACTION:
            if txn.status == TransactionStatus.PROCESSING:
                # Already past the action (it cannot go back): keep waiting for its end.
                txn.next_check_at = timezone.now() + timedelta(seconds=settings.PAYGATE_LOOKUP_INTERVAL_SECONDS)
            else:
                _accept(
                    txn,
                    attempt,
                    payment_id=result.payment_id,
                    to=TransactionStatus.REQUIRES_ACTION,
                    action=result.action,
                )
        elif decision in (NextStep.PROCESSING, NextStep.LOOK_UP_LATER):
            # Keep it on this gateway: its callback or a later look-up settles it.
            first = txn.status in (TransactionStatus.PENDING, TransactionStatus.REQUIRES_ACTION)
            txn.gateway = attempt.gateway
            txn.gateway_reference = attempt.gateway_payment_id
            if txn.status == TransactionStatus.REQUIRES_ACTION and result.status != LookupStatus.ACCEPTED:
                # Nothing new (the look-up failed, or found nothing): the action's deadline still holds.
                _require_action(txn, None)
            else:
                if first:
                    transaction_transition(txn, to=TransactionStatus.PROCESSING, save=False)
                delay = (
                    settings.PAYGATE_LOOKUP_FIRST_DELAY_SECONDS if first else settings.PAYGATE_LOOKUP_INTERVAL_SECONDS
                )
                txn.next_check_at = timezone.now() + timedelta(seconds=delay)
        else:
            raise AssertionError(f"a look-up cannot lead to {decision}")
        transaction_save(txn, attempts=attempts_if_first(attempt), attempt=attempt)
    if known == Outcome.ACCEPTED and not attempt.error and decision in _SCORED_ENDS:
        # How an accepted payment ended (a call that faulted was scored as a failure already).
        transaction_route_score(txn, attempt, success=decision == NextStep.COMPLETED)
    logger.info("look-up answered %s", result.status)
    return step


def _lookup(step: Lookup) -> LookupResult:
    adapter = get_adapter(step.gateway.data_format, gateway_credentials(step.gateway))
    result = adapter.lookup_payment(step.attempt_id)
    if result.latency_ms is not None:
        GATEWAY_LATENCY.labels(gateway=step.gateway.code, operation="lookup").observe(result.latency_ms / 1000)
    return result


def _send(step: Call) -> PaymentResult:
    if sent_too_late(step.attempt_created_at):
        logger.warning("attempt not sent: too late after it was committed")
        return PaymentResult(outcome=Outcome.NOT_SUBMITTED, error=NOT_SENT_IN_TIME)
    return get_adapter(step.gateway.data_format, gateway_credentials(step.gateway)).create_payment(step.request)


def transaction_process(*, transaction_id: str) -> RetryLater | None:
    """Drive a pending transaction as far as it can go now; return a delay if it must wait."""
    bind(transaction_id=transaction_id)
    for _ in range(_MAX_STEPS):
        step = _next_step(transaction_id)
        while True:
            if isinstance(step, (Call, Lookup)):
                bind(attempt=step.attempt_id, gateway=step.gateway.code)
            if isinstance(step, Call):
                call, result = step, _send(step)
                # The common case: nobody touched the row during the call, which spares the lock's read.
                resumed = transaction_resume(call.written) if call.written is not None else None
                try:
                    step = _record_result(transaction_id, call.attempt_id, result, probe=call.probe, resumed=resumed)
                except TransactionChanged:
                    step = _record_result(transaction_id, call.attempt_id, result, probe=call.probe)
            elif isinstance(step, Lookup):
                step = _record_lookup(transaction_id, step.attempt_id, _lookup(step))
            else:
                break
        if isinstance(step, Done):
            return None
        if isinstance(step, RetryLater):
            return step
        # Continue: decide again under the lock.
    return RetryLater(countdown=backoff(1))


def transaction_reconcile(*, transaction_id: str) -> RetryLater | None:
    """Look up a `processing` transaction's current attempt; expire it past the deadline.

    When the look-up sends it back to routing, the answer is processing's own: a retry the
    caller publishes, or None.
    """
    bind(transaction_id=transaction_id)
    with transaction.atomic():
        txn = transaction_lock(transaction_id)
        if txn.status not in (TransactionStatus.PROCESSING, TransactionStatus.REQUIRES_ACTION):
            return None
        attempt = transaction_attempt_current(txn)
        if attempt is None:
            return None
        # Claim this look-up so that a concurrent sweep does not repeat it straight away.
        txn.next_check_at = timezone.now() + timedelta(seconds=settings.PAYGATE_LOOKUP_INTERVAL_SECONDS)
        transaction_save(txn, fields=["next_check_at", "updated_at"])
    bind(attempt=attempt.pk, gateway=attempt.gateway.code)
    step = _record_lookup(
        transaction_id,
        str(attempt.pk),
        _lookup(Lookup(attempt_id=str(attempt.pk), gateway=attempt.gateway)),
        expire_if_unresolved=True,
    )
    if isinstance(step, Continue):
        # The task publishes a retry: processing never imports the tasks that call it.
        return transaction_process(transaction_id=transaction_id)
    return None


def transaction_return_lookup(*, transaction_id: str, timeout: float) -> None:
    """The customer is back from the gateway (CONTRACT §11): look the current attempt up now.

    Applied exactly as any status look-up; nothing the browser brought is trusted. A short
    timeout: the customer waits for this. A failed look-up changes nothing, and never expires
    or fails over anything. Either way, a status change another process is writing as the
    customer arrives (the gateway's callback, sent as it sent the customer back) is waited for,
    so that the page the customer sees next reads it rather than the status before it.
    """
    txn = Transaction.objects.filter(pk=transaction_id).only("pk", "status").first()
    if txn is None or txn.status not in (TransactionStatus.REQUIRES_ACTION, TransactionStatus.PROCESSING):
        return
    try:
        _look_up_on_return(txn, timeout=timeout)
    finally:
        _status_change_awaited(transaction_id, timeout=timeout)


def _look_up_on_return(txn: Transaction, *, timeout: float) -> None:
    attempt = transaction_attempt_current(txn)
    if attempt is None or attempt.outcome != AttemptOutcome.ACCEPTED:
        return
    bind(transaction_id=str(txn.pk), attempt=attempt.pk, gateway=attempt.gateway.code)
    credentials = gateway_credentials(attempt.gateway)
    credentials = replace(
        credentials,
        connect_timeout=min(credentials.connect_timeout, timeout),
        read_timeout=min(credentials.read_timeout, timeout),
    )
    result = get_adapter(attempt.gateway.data_format, credentials).lookup_payment(str(attempt.pk))
    if result.status == LookupStatus.UNAVAILABLE:
        return
    _record_lookup(str(txn.pk), str(attempt.pk), result)


def _status_change_awaited(transaction_id: str, *, timeout: float) -> None:
    """Wait, at most `timeout`, for whoever holds the transaction's row lock to commit.

    Every status change is written under that lock (`transaction_lock`); taking it and letting
    it go at once waits for one under way and changes nothing. SQLite's writers are serial, so
    there is nothing to wait for there.
    """
    if connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{max(int(timeout * 1000), 1)}ms"])
            Transaction.objects.select_for_update().filter(pk=transaction_id).values_list("pk", flat=True).first()
    except OperationalError:
        # The holder took longer than the customer can wait: the page shows the status as it is.
        return
