"""The chaos checker's refund and webhook checks, on hand-made snapshots: each anomaly is seen, a clean run is not."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from chaos.check import Snapshot, check, check_actions, check_events, check_refunds

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TXN = "11111111-1111-1111-1111-111111111111"


def at(seconds: float) -> datetime:
    return NOW - timedelta(seconds=100 - seconds)


def refund(refund_id: str, amount: str, status: str = "succeeded", **fields: Any) -> dict[str, Any]:
    return {
        "id": refund_id,
        "transaction_id": TXN,
        "amount": Decimal(amount),
        "currency": "EUR",
        "status": status,
        "failure_reason": fields.pop("failure_reason", "gateway_failed" if status == "failed" else None),
        "gateway": "acmepay",
        "idempotency_key": f"key-{refund_id}",
        "retry_round": 0,
        "next_check_at": None,
        "created_at": at(10),
        "finished_at": at(20) if status in ("succeeded", "failed") else None,
        **fields,
    }


def at_gateway(refund_id: str, amount: str, status: str = "succeeded", **fields: Any) -> dict[str, Any]:
    return {"reference": refund_id, "payment_id": "pay_1", "amount": amount, "status": status, "requests": 1, **fields}


def request(refund_id: str | None, expect: str = "accepted", status: int | None = 202, **fields: Any) -> dict[str, Any]:
    return {
        "key": f"key-{refund_id}",
        "transaction_id": TXN,
        "step": "full",
        "expect": expect,
        "status": status,
        "code": None,
        "id": refund_id,
        "ids": [refund_id] if refund_id else [],
        "tries": 1,
        **fields,
    }


def snap(
    refunds: list[dict[str, Any]], gateway: list[dict[str, Any]], *, gateway_code: str = "acmepay", **fields: Any
) -> Snapshot:
    transaction = {
        "id": TXN,
        "type": "deposit",
        "status": "completed",
        "amount": Decimal("100.00"),
        "currency": "EUR",
        "gateway": "acmepay",
        "gateway_reference": "pay_1",
        "failure_reason": None,
        "idempotency_key": "deposit-1",
        "next_check_at": None,
        "updated_at": NOW,
    }
    payment = {"reference": "att_1", "payment_id": "pay_1", "transaction_id": TXN, "amount": "100.00"}
    return Snapshot(
        now=NOW,
        transactions={TXN: transaction},
        attempts={},
        events=fields.pop("events", []),
        duplicate_event_keys=[],
        payments={"acmepay": [{**payment, "status": "completed"}], "globex": []},
        refunds={item["id"]: item for item in refunds},
        sandbox_refunds={gateway_code: gateway, **({"acmepay": []} if gateway_code != "acmepay" else {})},
        **fields,
    )


def violations(report: dict[str, Any]) -> dict[str, int]:
    return {name: n for name, n in report["violations"].items() if n}


def test_partial_refunds_that_fit_and_a_refusal_above_the_remainder_are_clean() -> None:
    history = [
        request("r1"),
        request("r2"),
        request(None, expect="exceeds", status=422, code="amount_exceeds_refundable"),
    ]
    report = check_refunds(
        history,
        snap(
            [refund("r1", "30.00"), refund("r2", "70.00", created_at=at(15))],
            [at_gateway("r1", "30.00"), at_gateway("r2", "70.00", requests=2)],
        ),
    )
    assert violations(report) == {}
    assert report["counts"]["refused_as_expected"] == 1
    assert report["counts"]["resends_absorbed_by_reference"] == 1


def test_a_refund_above_the_remainder_is_fine_only_when_the_earlier_one_had_failed_first() -> None:
    failed_first = refund("r1", "100.00", "failed", finished_at=at(12))
    later = refund("r2", "100.00", created_at=at(15))
    gateway = [at_gateway("r1", "100.00", "failed"), at_gateway("r2", "100.00")]
    report = check_refunds([request("r1"), request("r2", expect="exceeds")], snap([failed_first, later], gateway))
    assert violations(report) == {}
    assert report["counts"]["exceeds_accepted_after_a_failure"] == 1

    failed_after = refund("r1", "100.00", "failed", finished_at=at(18))
    report = check_refunds([request("r1"), request("r2")], snap([failed_after, later], gateway))
    assert violations(report) == {"refunds_above_deposit": 1}


Case = Callable[[], tuple[list[dict[str, Any]], Snapshot]]

CASES: dict[str, tuple[Case, dict[str, int]]] = {
    "lost": (
        lambda: ([request("r1"), request("r9")], snap([refund("r1", "10.00")], [at_gateway("r1", "10.00")])),
        {"refunds_lost": 1},
    ),
    "stuck": (
        lambda: (
            [request("r1")],
            snap([refund("r1", "10.00", "processing", next_check_at=at(50))], [at_gateway("r1", "10.00", "accepted")]),
        ),
        {"refunds_stuck": 1},
    ),
    "one key, two refunds": (
        lambda: (
            [request("r1", ids=["r1", "r2"])],
            snap(
                [refund("r1", "10.00"), refund("r2", "10.00", idempotency_key="key-r1")],
                [at_gateway("r1", "10.00"), at_gateway("r2", "10.00")],
            ),
        ),
        {"refunded_twice": 2},
    ),
    "above the deposit in the database": (
        lambda: (
            [request("r1"), request("r2")],
            snap(
                [refund("r1", "60.00", "processing", next_check_at=at(200)), refund("r2", "60.00", created_at=at(12))],
                [at_gateway("r1", "60.00", "accepted")],
            ),
        ),
        # r2 is also without its gateway refund.
        {"refunds_above_deposit": 2, "refund_succeeded_unmatched": 1},
    ),
    "above the payment at the gateway": (
        lambda: (
            [request("r1")],
            snap([refund("r1", "10.00")], [at_gateway("r1", "10.00"), at_gateway("x", "95.00", "accepted")]),
        ),
        {"gateway_refunds_above_payment": 1, "refund_reference_mismatch": 1},
    ),
    "succeeded without a gateway refund": (
        lambda: ([request("r1")], snap([refund("r1", "10.00")], [at_gateway("r1", "10.00", "failed")])),
        {"refund_succeeded_unmatched": 1},
    ),
    "refunded at the gateway, failed here": (
        lambda: ([request("r1")], snap([refund("r1", "10.00", "failed")], [at_gateway("r1", "10.00")])),
        {"refunded_but_failed": 1},
    ),
    "sent to another gateway": (
        lambda: (
            [request("r1")],
            snap([refund("r1", "10.00", "failed")], [at_gateway("r1", "10.00", "failed")], gateway_code="globex"),
        ),
        {"refund_reference_mismatch": 1},
    ),
    "refused though refundable": (
        lambda: (
            [request(None, status=422, code="amount_exceeds_refundable")],
            snap([], []),
        ),
        {"refund_wrongly_refused": 1},
    ),
    "both racers refused": (
        lambda: (
            [
                request(None, expect="race", status=422, code="amount_exceeds_refundable"),
                request(None, expect="race", status=422, code="amount_exceeds_refundable"),
            ],
            snap([], []),
        ),
        {"refund_wrongly_refused": 1},
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_refund_anomaly_is_reported(case: tuple[Case, dict[str, int]]) -> None:
    make, expected = case
    history, snapshot = make()
    assert violations(check_refunds(history, snapshot)) == expected


def test_events_missing_duplicated_unknown_or_badly_signed_are_reported() -> None:
    events = [{"id": f"evt_{n}", "type": "transaction.created", "created_at": NOW} for n in range(4)]
    deliveries = [{"event_id": "evt_3", "status": "pending", "attempt_count": 2, "next_attempt_at": NOW}]
    snapshot = snap([], [], client_events=events, deliveries=deliveries)

    def got(event_id: str, **fields: Any) -> dict[str, Any]:
        return {"id": event_id, "body_id": event_id, "type": "transaction.created", "signature_ok": True, **fields}

    clean = check_events([got("evt_0"), got("evt_1"), got("evt_2"), got("evt_3")], snapshot)
    assert violations(clean) == {}
    report = check_events(
        [
            got("evt_0"),
            got("evt_0"),
            got("evt_0"),
            got("evt_1", signature_ok=False),
            got("evt_2", body_id="x"),
            got("evt_3", answer=503),
            got("evt_9"),
        ],
        snapshot,
    )
    assert violations(report) == {"events_undelivered": 1, "events_phantom": 1, "webhook_bad_deliveries": 2}
    assert report["counts"]["events_received_more_than_once"] == 1
    assert report["counts"]["extra_copies"] == 2
    assert report["counts"]["posts_refused_by_receiver"] == 1
    assert report["examples"]["undelivered"][0]["deliveries"] == [("pending", 2, str(NOW))]


def test_a_payment_callback_and_its_refunds_callbacks_are_not_one_object_applied_twice() -> None:
    def callback(event_id: str, refund_id: str | None) -> dict[str, Any]:
        return {
            "gateway": "acmepay",
            "event_id": event_id,
            "reference": refund_id or "att_1",
            "result": "applied",
            "flagged": False,
            "flag_reason": "",
            "transaction_id": TXN,
            "refund_id": refund_id,
            "received_at": NOW,
        }

    events = [callback("e1", None), callback("e2", "r1"), callback("e3", "r2")]
    snapshot = snap([refund("r1", "10.00"), refund("r2", "20.00")], [], events=events)
    assert check([], snapshot)["violations"]["callback_applied_twice"] == 0
    snapshot.events.append(callback("e4", "r2"))
    assert check([], snapshot)["violations"]["callback_applied_twice"] == 1


# --- customer actions (CONTRACT §11) -------------------------------------------------------------------

ACTION_AT = at(30)
DEADLINE = ACTION_AT.timestamp() + 20


def action_snap(
    status: str, reason: str | None, *, finished: datetime | None = None, failed_over: bool = False
) -> Snapshot:
    transaction = {
        "id": TXN,
        "type": "deposit",
        "status": status,
        "failure_reason": reason,
        "gateway": "globex",
        "return_url": "https://shop.example/chaos/return?order=1",
        "action": {"type": "redirect", "url": "http://127.0.0.1:8313/challenge/p1", "deadline": DEADLINE},
        "requires_action_at": ACTION_AT,
        "finished_at": finished or at(60),
        "next_check_at": None,
        "updated_at": NOW,
    }
    attempts = [{"gateway": "globex", "outcome": "accepted", "created_at": at(29.5)}]
    if failed_over:
        attempts.append({"gateway": "acmepay", "outcome": "accepted", "created_at": at(40)})
    return Snapshot(
        now=NOW,
        transactions={TXN: transaction},
        attempts={TXN: attempts},
        events=[],
        duplicate_event_keys=[],
        payments={},
    )


def customer(chose: str | None, **fields: Any) -> dict[str, Any]:
    merchant = f"https://shop.example/chaos/return?order=1&transaction_id={TXN}"
    return {
        "id": TXN,
        "behaviour": chose or "abandon",
        "chose": chose,
        "outcome": "done",
        **({"merchant_redirect": merchant} if chose else {}),
        **fields,
    }


SENT = [{"id": TXN, "status": 202, "return_url": True}]


def test_approved_cancelled_and_abandoned_actions_that_end_as_they_should_are_clean() -> None:
    assert violations(check_actions(SENT, [customer("approve")], action_snap("completed", None))) == {}
    assert violations(check_actions(SENT, [customer("cancel")], action_snap("failed", "cancelled"))) == {}
    expired = action_snap("failed", "expired", finished=ACTION_AT + timedelta(seconds=26))
    report = check_actions(SENT, [customer(None)], expired)
    assert violations(report) == {}
    assert report["counts"]["expired_after_deadline_s"] == "6.0 / 6.0"


def test_each_action_anomaly_is_reported() -> None:
    def found(customers: list[dict[str, Any]], snapshot: Snapshot, **kwargs: Any) -> dict[str, int]:
        return violations(check_actions(SENT, customers, snapshot, **kwargs))

    failed_over = action_snap("completed", None, failed_over=True)
    assert found([customer("approve")], failed_over) == {"failed_over_from_action": 1}
    assert found([customer("approve")], action_snap("failed", "expired")) == {"approved_not_completed": 1}
    assert found([customer("cancel")], action_snap("failed", "declined")) == {"cancelled_not_cancelled": 1}
    # Nobody acted: expired, but before its deadline, long after it, or not expired at all.
    early = action_snap("failed", "expired", finished=ACTION_AT + timedelta(seconds=10))
    late = action_snap("failed", "expired", finished=ACTION_AT + timedelta(seconds=90))
    for snapshot in (early, late, action_snap("completed", None)):
        assert found([customer(None)], snapshot, deadline_slack=30) == {"abandoned_not_expired": 1}
    # A deposit that asked for an action without a customer in the run counts as abandoned too.
    assert found([], action_snap("failed", "gateway_failed")) == {"abandoned_not_expired": 1}
    wrong_id = customer("approve", merchant_redirect="https://shop.example/chaos/return?order=1&transaction_id=x")
    assert found([wrong_id], action_snap("completed", None)) == {"merchant_redirect_without_id": 1}
    elsewhere = customer("approve", redirected_elsewhere="https://evil.example/")
    assert found([elsewhere], action_snap("completed", None)) == {"redirected_elsewhere": 1}
    unstored = action_snap("completed", None)
    unstored.transactions[TXN]["return_url"] = ""
    assert found([customer("approve")], unstored) == {"return_url_not_stored": 1}
