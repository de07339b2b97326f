"""The failover rules (CONTRACT §3): the table itself, then processing following it.

The table is a pure function and is tested without a database. The processing tests run
`transaction_process` on the real database with a scripted adapter in place of the HTTP
ones (the adapter registry is the outer boundary): no worker, no sandbox.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from django.utils import timezone

from core.http import HttpReply
from gateways.adapters import ADAPTERS
from gateways.adapters.base import GatewayAdapter, WireRequest
from gateways.breaker import BreakerState, breaker_close, breaker_state
from gateways.models import Gateway
from gateways.types import (
    CallbackNotification,
    LookupResult,
    LookupStatus,
    Outcome,
    PaymentRequest,
    PaymentResult,
)
from payments.failover import FAILOVER_TABLE, NextStep, failover_next, failover_route
from payments.models import Attempt, Transaction
from payments.processing import RetryLater, transaction_process, transaction_reconcile

# --- the table, pure -------------------------------------------------------------------------

A, D, N, U = Outcome.ACCEPTED, Outcome.DECLINED, Outcome.NOT_SUBMITTED, Outcome.UNKNOWN
S = LookupStatus


@pytest.mark.parametrize(
    ("outcome", "lookup", "past_deadline", "expected"),
    [
        # after the call
        pytest.param(A, None, False, NextStep.PROCESSING, id="accepted-processing-on-that-gateway"),
        pytest.param(D, None, False, NextStep.DECLINED, id="declined-fails-no-failover"),
        pytest.param(N, None, False, NextStep.FAIL_OVER, id="not-submitted-next-route"),
        pytest.param(U, None, False, NextStep.LOOK_UP, id="unknown-look-up-first"),
        # a deadline never turns a call's answer into something else
        pytest.param(D, None, True, NextStep.DECLINED, id="declined-past-deadline-still-declined"),
        pytest.param(N, None, True, NextStep.FAIL_OVER, id="not-submitted-past-deadline-routing-decides"),
        pytest.param(U, None, True, NextStep.LOOK_UP, id="unknown-past-deadline-still-look-up"),
        # after the look-up of an unknown outcome
        pytest.param(U, S.NOT_FOUND, False, NextStep.FAIL_OVER, id="unknown-never-received-next-route"),
        pytest.param(U, S.ACCEPTED, False, NextStep.PROCESSING, id="unknown-found-accepted-processing"),
        pytest.param(U, S.COMPLETED, False, NextStep.COMPLETED, id="unknown-found-completed"),
        pytest.param(U, S.FAILED, False, NextStep.FAILED, id="unknown-found-failed"),
        pytest.param(U, S.UNAVAILABLE, False, NextStep.LOOK_UP_LATER, id="unknown-look-up-fails-look-up-later"),
        pytest.param(U, S.NOT_FOUND, True, NextStep.FAIL_OVER, id="unknown-never-received-past-deadline-next-route"),
        pytest.param(U, S.ACCEPTED, True, NextStep.EXPIRE, id="unknown-found-accepted-past-deadline-expires"),
        pytest.param(U, S.COMPLETED, True, NextStep.COMPLETED, id="unknown-found-completed-past-deadline"),
        pytest.param(U, S.FAILED, True, NextStep.FAILED, id="unknown-found-failed-past-deadline"),
        pytest.param(U, S.UNAVAILABLE, True, NextStep.EXPIRE, id="unknown-look-up-fails-past-deadline-expires"),
        # the reconciliation look-up of an accepted payment whose callback has not come
        pytest.param(A, S.ACCEPTED, False, NextStep.PROCESSING, id="accepted-still-accepted-processing"),
        pytest.param(A, S.COMPLETED, False, NextStep.COMPLETED, id="accepted-found-completed"),
        pytest.param(A, S.FAILED, False, NextStep.FAILED, id="accepted-found-failed"),
        pytest.param(A, S.UNAVAILABLE, False, NextStep.LOOK_UP_LATER, id="accepted-look-up-fails-look-up-later"),
        pytest.param(A, S.NOT_FOUND, False, NextStep.LOOK_UP_LATER, id="accepted-not-found-never-fails-over"),
        pytest.param(A, S.ACCEPTED, True, NextStep.EXPIRE, id="accepted-still-accepted-past-deadline-expires"),
        pytest.param(A, S.NOT_FOUND, True, NextStep.EXPIRE, id="accepted-not-found-past-deadline-expires"),
        pytest.param(A, S.UNAVAILABLE, True, NextStep.EXPIRE, id="accepted-look-up-fails-past-deadline-expires"),
        pytest.param(A, S.COMPLETED, True, NextStep.COMPLETED, id="accepted-found-completed-past-deadline"),
    ],
)
def test_failover_next(outcome: Outcome, lookup: LookupStatus | None, past_deadline: bool, expected: NextStep) -> None:
    assert failover_next(outcome, lookup, past_deadline=past_deadline) == expected


@pytest.mark.parametrize(
    ("past_deadline", "route_found", "expected"),
    [
        pytest.param(False, True, NextStep.CALL, id="a-route-call-it"),
        pytest.param(False, False, NextStep.RETRY_ROUTES, id="no-route-now-retry-all-with-backoff"),
        pytest.param(True, True, NextStep.NO_GATEWAY, id="past-deadline-no-gateway-available"),
        pytest.param(True, False, NextStep.NO_GATEWAY, id="past-deadline-without-route-no-gateway-available"),
    ],
)
def test_failover_route(past_deadline: bool, route_found: bool, expected: NextStep) -> None:
    assert failover_route(past_deadline=past_deadline, route_found=route_found) == expected


@pytest.mark.parametrize("outcome", [D, N], ids=str)
@pytest.mark.parametrize("lookup", list(LookupStatus), ids=str)
def test_a_call_that_needs_no_look_up_has_no_look_up_rule(outcome: Outcome, lookup: LookupStatus) -> None:
    with pytest.raises(ValueError):
        failover_next(outcome, lookup)


def test_the_table_covers_every_outcome_and_every_look_up_of_an_accepted_or_unknown_call() -> None:
    expected = {(o, None) for o in Outcome} | {(o, s) for o in (A, U) for s in LookupStatus}
    assert set(FAILOVER_TABLE) == expected


def test_only_a_look_up_can_complete_fail_or_expire() -> None:
    after_call = {failover_next(o, past_deadline=p) for o in Outcome for p in (False, True)}
    assert after_call == {NextStep.PROCESSING, NextStep.DECLINED, NextStep.FAIL_OVER, NextStep.LOOK_UP}


# --- processing follows the table -------------------------------------------------------------


@dataclass
class Script:
    """What each gateway answers, by code, in order; and every call made, in order."""

    payments: dict[str, list[PaymentResult]] = field(default_factory=dict)
    lookups: dict[str, list[LookupResult]] = field(default_factory=dict)
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (operation, gateway code, reference)


class ScriptedAdapter(GatewayAdapter):
    """Answers from the script above the wire: an unscripted call fails the test (IndexError)."""

    data_format = "scripted"
    callback_content_types = ("application/json",)
    script: ClassVar[Script]

    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        self.script.calls.append(("pay", self.credentials.code, request.reference))
        return self.script.payments[self.credentials.code].pop(0)

    def lookup_payment(self, reference: str) -> LookupResult:
        self.script.calls.append(("look_up", self.credentials.code, reference))
        return self.script.lookups[self.credentials.code].pop(0)

    def build_create_request(self, request: PaymentRequest) -> WireRequest:
        raise AssertionError("the scripted adapter never reaches the wire")

    def interpret_create_reply(self, reply: HttpReply) -> PaymentResult:
        raise AssertionError("the scripted adapter never reaches the wire")

    def build_lookup_request(self, reference: str) -> WireRequest:
        raise AssertionError("the scripted adapter never reaches the wire")

    def interpret_lookup_reply(self, reply: HttpReply) -> LookupResult:
        raise AssertionError("the scripted adapter never reaches the wire")

    @staticmethod
    def parse_callback(body: bytes) -> CallbackNotification:
        raise AssertionError("the scripted adapter receives no callbacks")


ACCEPTED = PaymentResult(outcome=Outcome.ACCEPTED, payment_id="pay_1", http_status=202)
DECLINED = PaymentResult(outcome=Outcome.DECLINED, reason="insufficient_funds", http_status=200)
NOT_SUBMITTED = PaymentResult(outcome=Outcome.NOT_SUBMITTED, error="service_unavailable", http_status=503)
UNKNOWN = PaymentResult(outcome=Outcome.UNKNOWN, error="timeout")


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Iterator[Script]:
    """Every data format is answered by the script; breakers start and end closed."""
    script = Script()
    monkeypatch.setattr(ScriptedAdapter, "script", script, raising=False)
    for data_format in list(ADAPTERS):
        monkeypatch.setitem(ADAPTERS, data_format, ScriptedAdapter)
    yield script
    for gateway_id in Gateway.objects.values_list("pk", flat=True):
        breaker_close(gateway_id)


@pytest.fixture
def txn(make_transaction: Callable[..., Transaction], script: Script) -> Transaction:
    """A DE deposit: acmepay (priority 1), then soapbank (priority 2)."""
    for gateway_id in Gateway.objects.values_list("pk", flat=True):
        breaker_close(gateway_id)
    return make_transaction()


def attempts(txn: Transaction) -> list[tuple[str, str]]:
    return [(a.gateway.code, a.outcome) for a in Attempt.objects.filter(transaction=txn).select_related("gateway")]


def breaker_of(code: str) -> BreakerState:
    return breaker_state(Gateway.objects.get(code=code).pk)


@pytest.mark.django_db
def test_declined_fails_at_once_without_a_second_attempt_or_a_breaker_fault(
    txn: Transaction, script: Script, settings: Any
) -> None:
    settings.PAYGATE_BREAKER_FAILURE_THRESHOLD = 1
    script.payments = {"acmepay": [DECLINED]}

    assert transaction_process(transaction_id=str(txn.pk)) is None

    txn.refresh_from_db()
    assert (txn.status, txn.failure_reason) == ("failed", "declined")
    assert attempts(txn) == [("acmepay", "declined")]
    assert [op for op, _, _ in script.calls] == ["pay"]
    assert breaker_of("acmepay") == BreakerState.CLOSED


@pytest.mark.django_db
def test_not_submitted_fails_over_to_the_next_route_and_counts_against_the_gateway(
    txn: Transaction, script: Script, settings: Any
) -> None:
    settings.PAYGATE_BREAKER_FAILURE_THRESHOLD = 1
    script.payments = {"acmepay": [NOT_SUBMITTED], "soapbank": [ACCEPTED]}

    assert transaction_process(transaction_id=str(txn.pk)) is None

    txn.refresh_from_db()
    assert (txn.status, txn.gateway.code, txn.gateway_reference) == ("processing", "soapbank", "pay_1")
    assert attempts(txn) == [("acmepay", "error"), ("soapbank", "accepted")]
    assert [(op, code) for op, code, _ in script.calls] == [("pay", "acmepay"), ("pay", "soapbank")]
    assert breaker_of("acmepay") == BreakerState.OPEN


@pytest.mark.parametrize(
    ("lookup", "status", "failure_reason", "gateway", "attempt_outcomes"),
    [
        pytest.param(
            LookupResult(status=LookupStatus.NOT_FOUND),
            "processing",
            None,
            "soapbank",
            [("acmepay", "error"), ("soapbank", "accepted")],
            id="never-received-next-route",
        ),
        pytest.param(
            LookupResult(status=LookupStatus.ACCEPTED, payment_id="pay_found"),
            "processing",
            None,
            "acmepay",
            [("acmepay", "accepted")],
            id="found-accepted-processing-on-that-gateway",
        ),
        pytest.param(
            LookupResult(status=LookupStatus.COMPLETED, payment_id="pay_found"),
            "completed",
            None,
            "acmepay",
            [("acmepay", "accepted")],
            id="found-completed",
        ),
        pytest.param(
            LookupResult(status=LookupStatus.FAILED, payment_id="pay_found"),
            "failed",
            "gateway_failed",
            "acmepay",
            [("acmepay", "accepted")],
            id="found-failed",
        ),
        pytest.param(
            LookupResult(status=LookupStatus.UNAVAILABLE, error="timeout"),
            "processing",
            None,
            "acmepay",
            [("acmepay", "unknown")],
            id="look-up-fails-stays-on-that-gateway",
        ),
    ],
)
@pytest.mark.django_db
def test_unknown_is_looked_up_on_that_gateway_before_anything_else(
    txn: Transaction,
    script: Script,
    lookup: LookupResult,
    status: str,
    failure_reason: str | None,
    gateway: str,
    attempt_outcomes: list[tuple[str, str]],
) -> None:
    script.payments = {"acmepay": [UNKNOWN], "soapbank": [ACCEPTED]}
    script.lookups = {"acmepay": [lookup]}

    assert transaction_process(transaction_id=str(txn.pk)) is None

    txn.refresh_from_db()
    assert (txn.status, txn.failure_reason, txn.gateway.code) == (status, failure_reason, gateway)
    assert attempts(txn) == attempt_outcomes
    first = Attempt.objects.get(transaction=txn, number=1)
    # The look-up asks for the very reference the call sent, before any other gateway is called.
    assert script.calls[:2] == [("pay", "acmepay", str(first.pk)), ("look_up", "acmepay", str(first.pk))]
    assert [code for _, code, _ in script.calls[2:]] == [code for code, _ in attempt_outcomes[1:]]


@pytest.mark.django_db
def test_a_failed_look_up_keeps_it_processing_and_the_next_look_up_settles_it(
    txn: Transaction, script: Script, settings: Any
) -> None:
    script.payments = {"acmepay": [UNKNOWN]}
    script.lookups = {
        "acmepay": [LookupResult(status=LookupStatus.UNAVAILABLE), LookupResult(status=LookupStatus.COMPLETED)]
    }
    before = timezone.now()

    transaction_process(transaction_id=str(txn.pk))

    txn.refresh_from_db()
    assert txn.status == "processing" and txn.next_check_at is not None
    assert txn.next_check_at >= before + timedelta(seconds=settings.PAYGATE_LOOKUP_FIRST_DELAY_SECONDS)
    assert transaction_reconcile(transaction_id=str(txn.pk)) is None
    txn.refresh_from_db()
    assert (txn.status, txn.gateway.code, txn.lookup_count) == ("completed", "acmepay", 2)
    assert [(op, code) for op, code, _ in script.calls] == [
        ("pay", "acmepay"),
        ("look_up", "acmepay"),
        ("look_up", "acmepay"),
    ]


@pytest.mark.django_db
def test_when_every_route_did_not_act_it_stays_pending_and_retries_them_all_with_backoff(
    txn: Transaction, script: Script, settings: Any
) -> None:
    settings.PAYGATE_RETRY_BACKOFF_BASE_SECONDS = 3
    script.payments = {"acmepay": [NOT_SUBMITTED, ACCEPTED], "soapbank": [NOT_SUBMITTED]}

    retry = transaction_process(transaction_id=str(txn.pk))

    assert isinstance(retry, RetryLater) and retry.countdown == 3
    txn.refresh_from_db()
    assert (txn.status, txn.route_round) == ("pending", 1)
    assert attempts(txn) == [("acmepay", "error"), ("soapbank", "error")]

    assert transaction_process(transaction_id=str(txn.pk)) is None  # the next round starts from priority 1

    txn.refresh_from_db()
    assert (txn.status, txn.gateway.code) == ("processing", "acmepay")
    assert [code for _, code, _ in script.calls] == ["acmepay", "soapbank", "acmepay"]


@pytest.mark.django_db
def test_past_the_routing_deadline_nothing_is_sent_and_it_fails_no_gateway_available(
    txn: Transaction, script: Script, settings: Any
) -> None:
    settings.PAYGATE_NO_GATEWAY_DEADLINE_SECONDS = 0

    assert transaction_process(transaction_id=str(txn.pk)) is None

    txn.refresh_from_db()
    assert (txn.status, txn.failure_reason) == ("failed", "no_gateway_available")
    assert script.calls == [] and attempts(txn) == []


@pytest.mark.django_db
def test_past_the_processing_deadline_an_unsettled_look_up_expires_it(
    txn: Transaction, script: Script, settings: Any
) -> None:
    script.payments = {"acmepay": [UNKNOWN]}
    script.lookups = {"acmepay": [LookupResult(status=LookupStatus.UNAVAILABLE)] * 2}
    transaction_process(transaction_id=str(txn.pk))
    settings.PAYGATE_PROCESSING_DEADLINE_SECONDS = 0

    assert transaction_reconcile(transaction_id=str(txn.pk)) is None

    txn.refresh_from_db()
    assert (txn.status, txn.failure_reason, txn.needs_review) == ("failed", "expired", True)
    assert [(op, code) for op, code, _ in script.calls] == [
        ("pay", "acmepay"),
        ("look_up", "acmepay"),
        ("look_up", "acmepay"),
    ]
