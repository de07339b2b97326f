"""Refunds end to end (CONTRACT §9): API → worker → the deposit's sandbox gateway over HTTP → signed callback."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, connections

from payments.models import ApiClient, Event, Refund, RefundAttempt, Transaction
from payments.refunds.services import refund_create
from testing.factories import deposit_body
from testing.stack import Sandbox, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

DEPOSIT = deposit_body(customer_id="cus_rf", payment_details=None, metadata=None)


def completed_deposit(api: Any, **changes: Any) -> dict[str, Any]:
    response = api.post("/api/v1/deposits", data=json.dumps({**DEPOSIT, **changes}), content_type="application/json")
    assert response.status_code == 202, response.content
    txn_id = response.json()["id"]
    return wait_for(
        lambda: (body := api.get(f"/api/v1/transactions/{txn_id}").json())["status"] == "completed" and body,
        timeout=30,
        message="the deposit to complete",
    )


def refund(api: Any, txn_id: str, body: dict[str, Any] | None = None, **headers: Any) -> Any:
    return api.post(
        f"/api/v1/transactions/{txn_id}/refunds",
        data=json.dumps(body or {}),
        content_type="application/json",
        **headers,
    )


def settled(api: Any, refund_id: str, timeout: float = 30) -> dict[str, Any]:
    return wait_for(
        lambda: (body := api.get(f"/api/v1/refunds/{refund_id}").json())["status"] in ("succeeded", "failed") and body,
        timeout=timeout,
        message=f"refund {refund_id} to settle",
    )


def test_a_full_refund_goes_to_the_deposit_s_gateway_and_succeeds(api: Any, stack: dict[str, Sandbox]) -> None:
    deposit = completed_deposit(api)

    response = refund(api, deposit["id"], {"reason": "customer asked"})

    assert response.status_code == 202, response.content
    created = response.json()
    assert set(created) == {
        "id",
        "transaction_id",
        "amount",
        "currency",
        "status",
        "failure_reason",
        "reason",
        "gateway",
        "created_at",
        "updated_at",
    }
    assert (created["amount"], created["currency"], created["status"], created["gateway"]) == (
        "25.00",
        "EUR",
        "pending",
        "acmepay",
    )
    assert response["Location"] == f"/api/v1/refunds/{created['id']}"
    done = settled(api, created["id"])
    assert (done["status"], done["failure_reason"], done["reason"]) == ("succeeded", None, "customer asked")
    shown = api.get(f"/api/v1/transactions/{deposit['id']}").json()
    assert shown["refunded_amount"] == "25.00"
    assert [r["id"] for r in shown["refunds"]] == [created["id"]]
    [at_gateway] = stack["acmepay"].refunds()
    assert (at_gateway["reference"], at_gateway["amount"], at_gateway["payment_id"]) == (
        created["id"],
        "25.00",
        deposit["gateway_reference"],
    )
    assert stack["globex"].refunds() == [] and stack["soapbank"].refunds() == []
    types = list(Event.objects.filter(refund_id=created["id"]).order_by("id").values_list("type", flat=True))
    assert types == ["refund.created", "refund.succeeded"]


def test_two_partials_then_one_over_the_remainder_is_refused(api: Any, stack: dict[str, Sandbox]) -> None:
    deposit = completed_deposit(api)
    first = refund(api, deposit["id"], {"amount": "10.00"}).json()
    second = refund(api, deposit["id"], {"amount": "15.00"}).json()

    over = refund(api, deposit["id"], {"amount": "0.01"})

    assert over.status_code == 422
    assert over.json()["error"]["code"] == "amount_exceeds_refundable"
    assert {settled(api, first["id"])["status"], settled(api, second["id"])["status"]} == {"succeeded"}
    shown = api.get(f"/api/v1/transactions/{deposit['id']}").json()
    assert shown["refunded_amount"] == "25.00"
    assert [r["id"] for r in shown["refunds"]] == [second["id"], first["id"]]  # newest first
    assert sorted(r["amount"] for r in stack["acmepay"].refunds()) == ["10.00", "15.00"]


def test_a_refund_above_what_remains_is_422_and_nothing_is_sent(api: Any, stack: dict[str, Sandbox]) -> None:
    deposit = completed_deposit(api)
    assert refund(api, deposit["id"], {"amount": "20.00"}).status_code == 202

    response = refund(api, deposit["id"], {"amount": "10.00"})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "amount_exceeds_refundable"
    assert Refund.objects.count() == 1


def test_only_a_completed_deposit_is_refundable(api: Any, stack: dict[str, Sandbox]) -> None:
    stack["acmepay"].mode("ok", callback="none")
    pending = api.post("/api/v1/deposits", data=json.dumps(DEPOSIT), content_type="application/json").json()
    stack["globex"].mode("decline")
    failed = api.post(
        "/api/v1/deposits",
        data=json.dumps({**DEPOSIT, "country": "US", "currency": "USD"}),
        content_type="application/json",
    ).json()
    wait_for(lambda: Transaction.objects.get(pk=failed["id"]).status == "failed", timeout=30)
    stack["acmepay"].mode("ok", callback="completed")
    withdrawal = api.post("/api/v1/withdrawals", data=json.dumps(DEPOSIT), content_type="application/json").json()
    wait_for(lambda: Transaction.objects.get(pk=withdrawal["id"]).status == "completed", timeout=30)

    for txn_id in (pending["id"], failed["id"], withdrawal["id"]):
        response = refund(api, txn_id)
        assert response.status_code == 422, txn_id
        assert response.json()["error"]["code"] == "not_refundable"
    assert not Refund.objects.exists()


def test_a_declined_refund_fails_declined(api: Any, stack: dict[str, Sandbox]) -> None:
    deposit = completed_deposit(api)
    stack["acmepay"].mode("decline")

    done = settled(api, refund(api, deposit["id"]).json()["id"])

    assert (done["status"], done["failure_reason"]) == ("failed", "declined")
    # A failed refund gives back what it held: the whole amount can be refunded again.
    stack["acmepay"].mode("ok")
    assert refund(api, deposit["id"]).status_code == 202


def test_a_gateway_down_during_a_refund_is_waited_for_and_never_failed_over(
    api: Any, stack: dict[str, Sandbox]
) -> None:
    deposit = completed_deposit(api)
    stack["acmepay"].mode("down")
    created = refund(api, deposit["id"], {"amount": "5.00"}).json()
    wait_for(lambda: RefundAttempt.objects.filter(refund_id=created["id"]).count() >= 2, timeout=30)
    assert api.get(f"/api/v1/refunds/{created['id']}").json()["status"] == "pending"

    stack["acmepay"].mode("ok")
    done = settled(api, created["id"])

    assert done["status"] == "succeeded" and done["gateway"] == "acmepay"
    assert stack["globex"].refunds() == [] and stack["soapbank"].refunds() == []
    [at_gateway] = stack["acmepay"].refunds()
    assert at_gateway["reference"] == created["id"]


def test_a_timeout_is_answered_by_a_look_up(api: Any, stack: dict[str, Sandbox]) -> None:
    deposit = completed_deposit(api)
    stack["acmepay"].mode("timeout")

    created = refund(api, deposit["id"]).json()
    wait_for(
        lambda: RefundAttempt.objects.filter(refund_id=created["id"], outcome__in=["unknown", "accepted"]).exists(),
        timeout=30,
    )
    done = settled(api, created["id"], timeout=45)

    assert done["status"] == "succeeded"
    [at_gateway] = stack["acmepay"].refunds()  # received once, though the first answer never came
    assert at_gateway["reference"] == created["id"]


def test_an_xml_gateway_refunds_over_soap(api: Any, stack: dict[str, Sandbox]) -> None:
    deposit = completed_deposit(api, country="GB", currency="GBP", amount="10.50")
    assert deposit["gateway"] == "soapbank"

    response = api.post(
        f"/api/v1/transactions/{deposit['id']}/refunds",
        data="<refund><amount>4.50</amount><reason>xml</reason></refund>",
        content_type="application/xml",
        HTTP_ACCEPT="application/xml",
    )

    assert response.status_code == 202, response.content
    assert b"<status>pending</status>" in response.content
    refund_id = Refund.objects.get().pk
    done = settled(api, str(refund_id))
    assert (done["status"], done["amount"], done["gateway"]) == ("succeeded", "4.50", "soapbank")
    [at_gateway] = stack["soapbank"].refunds()
    assert at_gateway["amount"] == "4.50"


def test_an_idempotency_key_replays_the_refund_and_refuses_another_body(api: Any, stack: dict[str, Sandbox]) -> None:
    deposit = completed_deposit(api)
    first = refund(api, deposit["id"], {"amount": "5.00"}, HTTP_IDEMPOTENCY_KEY="rf-1")
    again = refund(api, deposit["id"], {"amount": "5.00"}, HTTP_IDEMPOTENCY_KEY="rf-1")
    other = refund(api, deposit["id"], {"amount": "6.00"}, HTTP_IDEMPOTENCY_KEY="rf-1")

    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again["Idempotent-Replayed"] == "true"
    assert other.status_code == 409
    assert Refund.objects.count() == 1


def test_another_client_cannot_refund_or_see_a_refund(api: Any, other_api: Any, stack: dict[str, Sandbox]) -> None:
    deposit = completed_deposit(api)
    created = refund(api, deposit["id"], {"amount": "1.00"}).json()

    assert refund(other_api, deposit["id"]).status_code == 404
    assert other_api.get(f"/api/v1/refunds/{created['id']}").status_code == 404


@pytest.mark.services
def test_twenty_concurrent_partial_refunds_never_exceed_the_deposit(api: Any, stack: dict[str, Sandbox]) -> None:
    """Each asks 2.00 of a 25.00 deposit: twelve fit, eight must be refused, whatever the interleaving."""
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    deposit = completed_deposit(api)
    client = ApiClient.objects.get(transactions__pk=deposit["id"])
    start = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def ask() -> None:
        start.wait(10)
        try:
            refund_create(client=client, transaction_id=deposit["id"], amount="2.00")
            result = "created"
        except Exception as exc:  # the refusal is the point
            result = getattr(exc, "code", type(exc).__name__)
        finally:
            connections.close_all()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(set(outcomes)) == ["amount_exceeds_refundable", "created"]
    assert outcomes.count("created") == 12
    total = sum((r.amount for r in Refund.objects.filter(transaction_id=deposit["id"])), start=Decimal(0))
    assert total == Decimal("24.00") <= Decimal("25.00")
