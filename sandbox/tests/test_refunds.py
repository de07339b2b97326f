"""Refunds at the sandbox gateway, JSON and SOAP, over HTTP against a sandbox process.

A refund names the gateway's payment by its `payment_id`; the sandbox declines one whose
payment it does not know or cannot cover, answers a repeated reference as the first time,
and calls back (signed, like payments) with the refund's final status. Refund callbacks go
to their own path on the receiver, so that they are told apart from the payments' ones.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import defusedxml.ElementTree
import pytest
import requests

from sandbox.tests.support import (
    CallbackReceiver,
    Received,
    Sandbox,
    assert_signed,
    json_pay,
    json_refund,
    payment_fields,
    refund_fields,
    soap_fault_code,
    soap_pay,
    soap_refund,
    soap_refund_status,
    soap_result,
    start_sandbox,
    wait_until,
    xml_children,
)

pytestmark = pytest.mark.integration

REFUND_CALLBACKS = "/refund-callbacks"
# What a payment entry of GET /_sandbox/payments holds: refunds must not change it.
PAYMENT_LISTING_KEYS = {
    "reference", "payment_id", "transaction_id", "type", "amount", "currency", "country", "customer_id",
    "payment_method", "payment_details", "status", "reason", "received_at", "requests", "callbacks_delivered",
    "return_url", "action",
}  # fmt: skip


def refund_callbacks(receiver: CallbackReceiver, count: int, timeout: float = 10.0) -> list[Received]:
    def received() -> list[Received]:
        return [callback for callback in receiver.snapshot() if callback.path == REFUND_CALLBACKS]

    wait_until(lambda: len(received()) >= count, timeout, f"expected {count} refund callback(s), got {received()}")
    return received()


def assert_no_more_refund_callbacks(receiver: CallbackReceiver, count: int) -> None:
    """Exactly `count` refund callbacks arrive, and nothing after them (the payments' came before)."""
    if count:
        refund_callbacks(receiver, count)
    receiver.assert_stays_at(len(receiver.snapshot()))
    assert len([c for c in receiver.snapshot() if c.path == REFUND_CALLBACKS]) == count


def completed_json_payment(gw: Sandbox, receiver: CallbackReceiver, amount: str = "125.50") -> str:
    """A payment the sandbox has completed (its callback sent); its payment_id."""
    fields = payment_fields(receiver) | {"amount": amount}
    payment_id = str(json_pay(gw, fields).json()["payment_id"])
    wait_until(
        lambda: gw.get(f"/payments/{fields['reference']}").json()["status"] == "completed",
        10,
        "the payment did not complete",
    )
    return payment_id


def completed_soap_payment(gw: Sandbox, receiver: CallbackReceiver) -> str:
    fields = payment_fields(receiver)
    payment_id = soap_result(soap_pay(gw, fields), "ProcessPayment")["PaymentId"]
    wait_until(lambda: gw.payments()[-1]["status"] == "completed", 10, "the payment did not complete")
    return payment_id


# --- JSON protocol ----------------------------------------------------------------------------


def test_json_refund_accepted_signed_callback_lookup_and_listing(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    payment_id = completed_json_payment(json_gw, receiver)
    fields = refund_fields(receiver, payment_id, amount="40.00")
    assert json_gw.get(f"/refunds/{fields['reference']}").status_code == 404

    response = json_refund(json_gw, fields)
    assert response.status_code == 202
    answer = response.json()
    assert answer == {"refund_id": answer["refund_id"], "status": "accepted"}
    assert answer["refund_id"].startswith("rfd_")

    [callback] = refund_callbacks(receiver, 1)
    assert callback.headers["Content-Type"] == "application/json"
    assert_signed(json_gw, callback)
    body = callback.json()
    assert body["event_id"].startswith("evt_")
    assert body == {
        "event_id": body["event_id"],
        "type": "refund",
        "refund_id": answer["refund_id"],
        "reference": fields["reference"],
        "status": "succeeded",
        "reason": None,
    }
    lookup = json_gw.get(f"/refunds/{fields['reference']}", headers={"Authorization": f"Bearer {json_gw.api_key}"})
    assert lookup.status_code == 200
    assert lookup.json() == {
        "refund_id": answer["refund_id"],
        "reference": fields["reference"],
        "status": "succeeded",
        "reason": None,
    }
    # A refund is not a payment: neither protocol path finds one under the other's reference.
    assert json_gw.get(f"/payments/{fields['reference']}").status_code == 404

    listing = json_gw.get("/_sandbox/payments").json()
    [payment] = listing["payments"]
    assert set(payment) == PAYMENT_LISTING_KEYS
    assert (payment["payment_id"], payment["status"]) == (payment_id, "completed")
    [refund] = listing["refunds"]
    assert refund == {
        "kind": "refund",
        "reference": fields["reference"],
        "refund_id": answer["refund_id"],
        "payment_id": payment_id,
        "amount": "40.00",
        "currency": "EUR",
        "status": "succeeded",
        "reason": None,
        "received_at": refund["received_at"],
        "requests": 1,
        "callbacks_delivered": 1,
    }
    assert_no_more_refund_callbacks(receiver, 1)


def test_json_refund_wrong_key_bad_body_and_lookup_key(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    payment_id = completed_json_payment(json_gw, receiver)
    fields = refund_fields(receiver, payment_id)
    assert json_refund(json_gw, fields, api_key="not-the-key").status_code == 401
    assert json_gw.post("/refunds", json=fields).status_code == 401
    headers = {"Authorization": f"Bearer {json_gw.api_key}", "Content-Type": "application/json"}
    assert json_gw.post("/refunds", data=b"{not json", headers=headers).status_code == 400
    assert json_gw.post("/refunds", data=b"[1]", headers=headers).status_code == 400
    for broken in (
        {"amount": "ten"}, {"amount": "-1"}, {"amount": "0"}, {"amount": "NaN"}, {"payment_id": ""},
        {"reference": None}, {"currency": 978}, {"callback_url": "ftp://example.com/x"},
    ):  # fmt: skip
        response = json_refund(json_gw, fields | broken)
        assert (response.status_code, response.json()["error"]) == (400, "bad_request"), broken
    missing = dict(fields)
    del missing["payment_id"]
    assert json_refund(json_gw, missing).status_code == 400
    assert json_gw.refunds() == []

    assert json_refund(json_gw, fields | {"amount": 10}).status_code == 202  # a JSON number is accepted
    path = f"/refunds/{fields['reference']}"
    assert json_gw.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert json_gw.get(path).status_code == 200
    assert json_gw.get("/refunds/a%2Fb").status_code == 404
    assert json_gw.refunds()[0]["amount"] == "10"


def test_json_repeated_reference_answers_as_the_first_time_and_counts_once(
    json_gw: Sandbox, receiver: CallbackReceiver
) -> None:
    payment_id = completed_json_payment(json_gw, receiver, amount="125.50")
    first_fields = refund_fields(receiver, payment_id, amount="100.00")
    first = json_refund(json_gw, first_fields)
    repeat = json_refund(json_gw, first_fields)
    assert first.status_code == repeat.status_code == 202
    assert first.json() == repeat.json()
    # Even with other content, a known reference is the refund first received.
    assert json_refund(json_gw, first_fields | {"amount": "125.50"}).json() == first.json()

    # Counted once: 25.50 remain, and are refundable.
    rest = json_refund(json_gw, refund_fields(receiver, payment_id, amount="25.50"))
    assert rest.status_code == 202
    more = json_refund(json_gw, refund_fields(receiver, payment_id, amount="0.01"))
    assert (more.status_code, more.json()) == (200, {"status": "declined", "reason": "amount_exceeds_payment"})

    refunds = {refund["reference"]: refund for refund in json_gw.refunds()}
    assert refunds[first_fields["reference"]]["requests"] == 3
    assert refunds[first_fields["reference"]]["amount"] == "100.00"
    assert [refund["status"] for refund in refunds.values()].count("declined") == 1
    # One callback per accepted refund, none for the decline, none for the repeats.
    refund_callbacks(receiver, 2)
    assert_no_more_refund_callbacks(receiver, 2)
    # Still the same answer once the refund has succeeded.
    assert json_refund(json_gw, first_fields).json() == first.json()


def test_json_refund_declines(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    def declined(fields: dict[str, str]) -> str:
        response = json_refund(json_gw, fields)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "declined"
        return str(response.json()["reason"])

    assert declined(refund_fields(receiver, "pay_unknown")) == "unknown_payment"
    payment_id = completed_json_payment(json_gw, receiver, amount="50.00")
    assert declined(refund_fields(receiver, payment_id, amount="50.01")) == "amount_exceeds_payment"
    assert declined(refund_fields(receiver, payment_id) | {"currency": "USD"}) == "currency_mismatch"

    json_gw.set_mode(mode="decline")
    declined_payment = payment_fields(receiver)
    json_pay(json_gw, declined_payment)
    json_gw.set_mode(mode="ok")
    [declined_listing] = [p for p in json_gw.payments() if p["reference"] == declined_payment["reference"]]
    assert declined(refund_fields(receiver, declined_listing["payment_id"])) == "payment_not_refundable"

    # A declined refund is kept: its repeat answers the same, its look-up says failed, nothing calls back.
    fields = refund_fields(receiver, "pay_unknown")
    assert declined(fields) == declined(fields) == "unknown_payment"
    lookup = json_gw.get(f"/refunds/{fields['reference']}").json()
    assert (lookup["status"], lookup["reason"]) == ("failed", "unknown_payment")
    assert all(refund["status"] == "declined" for refund in json_gw.refunds())
    assert_no_more_refund_callbacks(receiver, 0)
    # The whole amount is still refundable.
    assert json_refund(json_gw, refund_fields(receiver, payment_id, amount="50.00")).status_code == 202


def test_a_failed_refund_gives_its_amount_back(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    payment_id = completed_json_payment(json_gw, receiver, amount="30.00")
    json_gw.set_mode(callback="failed")
    fields = refund_fields(receiver, payment_id, amount="30.00")
    refund_id = json_refund(json_gw, fields).json()["refund_id"]
    [callback] = refund_callbacks(receiver, 1)
    assert_signed(json_gw, callback)
    body = callback.json()
    assert (body["type"], body["refund_id"], body["status"], body["reason"]) == (
        "refund",
        refund_id,
        "failed",
        "rejected_by_bank",
    )
    assert json_gw.get(f"/refunds/{fields['reference']}").json()["status"] == "failed"

    json_gw.set_mode(callback="completed")
    assert json_refund(json_gw, refund_fields(receiver, payment_id, amount="30.00")).status_code == 202


def test_concurrent_refunds_never_exceed_the_payment(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    payment_id = completed_json_payment(json_gw, receiver, amount="125.50")
    json_gw.set_mode(callback="none", latency_ms=300)  # the requests overlap in the sandbox

    def refund(_: int) -> int:
        return json_refund(json_gw, refund_fields(receiver, payment_id, amount="30.00"), timeout=30).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(refund, range(12)))
    assert sorted(statuses) == [200] * 8 + [202] * 4
    refunds = json_gw.refunds()
    assert sorted(refund["status"] for refund in refunds) == ["accepted"] * 4 + ["declined"] * 8
    assert {refund["reason"] for refund in refunds if refund["status"] == "declined"} == {"amount_exceeds_payment"}


# --- Modes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "status"),
    [({"mode": "down"}, 503), ({"mode": "error"}, 500), ({"mode": "flaky", "failure_rate": 1.0}, 503)],
    ids=["down", "error", "flaky"],
)
def test_json_technical_faults_record_no_refund(
    json_gw: Sandbox, receiver: CallbackReceiver, settings: dict[str, Any], status: int
) -> None:
    payment_id = completed_json_payment(json_gw, receiver)
    json_gw.set_mode(**settings)
    fields = refund_fields(receiver, payment_id)
    assert json_refund(json_gw, fields).status_code == status
    assert json_gw.get(f"/refunds/{fields['reference']}").status_code == (503 if settings["mode"] == "down" else 404)
    assert json_gw.refunds() == []
    assert_no_more_refund_callbacks(receiver, 0)


def test_json_refund_timeout_mode_records_but_answers_late(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    payment_id = completed_json_payment(json_gw, receiver)
    json_gw.set_mode(mode="timeout")
    fields = refund_fields(receiver, payment_id)
    with pytest.raises(requests.ReadTimeout):
        json_refund(json_gw, fields, timeout=(2, 1))
    started = time.monotonic()
    lookup = json_gw.get(f"/refunds/{fields['reference']}")
    assert time.monotonic() - started < 0.9
    assert lookup.json()["status"] in ("accepted", "succeeded")
    [callback] = refund_callbacks(receiver, 1)
    assert callback.json()["refund_id"] == lookup.json()["refund_id"]


def test_json_refund_decline_mode_and_decline_rate(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    payment_id = completed_json_payment(json_gw, receiver)
    json_gw.set_mode(mode="decline")
    response = json_refund(json_gw, refund_fields(receiver, payment_id))
    assert (response.status_code, response.json()) == (200, {"status": "declined", "reason": "refund_rejected"})
    json_gw.set_mode(mode="ok", decline_rate=1.0)
    response = json_refund(json_gw, refund_fields(receiver, payment_id))
    assert (response.status_code, response.json()) == (200, {"status": "declined", "reason": "refund_rejected"})
    # What the gateway knows comes first: an unknown payment is declined as such.
    unknown = json_refund(json_gw, refund_fields(receiver, "pay_unknown")).json()
    assert unknown["reason"] == "unknown_payment"
    json_gw.set_mode(decline_rate=0.0)
    assert json_refund(json_gw, refund_fields(receiver, payment_id)).status_code == 202
    assert_no_more_refund_callbacks(receiver, 1)


def test_json_refund_callback_none_and_duplicates(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    payment_id = completed_json_payment(json_gw, receiver)
    json_gw.set_mode(callback="none")
    silent = refund_fields(receiver, payment_id)
    assert json_refund(json_gw, silent).status_code == 202
    assert_no_more_refund_callbacks(receiver, 0)
    assert json_gw.get(f"/refunds/{silent['reference']}").json()["status"] == "accepted"

    json_gw.set_mode(callback="completed", duplicate_callbacks=True)
    json_refund(json_gw, refund_fields(receiver, payment_id))
    first, second = refund_callbacks(receiver, 2)
    assert first.json() == second.json()
    assert first.json()["status"] == "succeeded"
    assert_no_more_refund_callbacks(receiver, 2)


def test_latency_applies_to_refunds(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    payment_id = completed_json_payment(json_gw, receiver)
    json_gw.set_mode(latency_ms=500)
    fields = refund_fields(receiver, payment_id)
    for send in (lambda: json_refund(json_gw, fields), lambda: json_gw.get(f"/refunds/{fields['reference']}")):
        started = time.monotonic()
        assert send().status_code in (200, 202)
        assert time.monotonic() - started >= 0.5


# --- SOAP protocol ----------------------------------------------------------------------------


def test_soap_refund_accepted_callback_and_status(xml_gw: Sandbox, receiver: CallbackReceiver) -> None:
    payment_id = completed_soap_payment(xml_gw, receiver)
    fields = refund_fields(receiver, payment_id, amount="125.50")
    not_found = soap_refund_status(xml_gw, fields["reference"])
    assert (not_found.status_code, soap_fault_code(not_found)) == (500, "Client.NotFound")

    response = soap_refund(xml_gw, fields)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xml")
    result = soap_result(response, "ProcessRefund")
    assert (result["Status"], result["Reason"]) == ("Accepted", "")
    assert result["RefundId"].startswith("rfd_")
    assert soap_result(soap_refund(xml_gw, fields), "ProcessRefund") == result  # a repeat

    [callback] = refund_callbacks(receiver, 1)
    assert callback.headers["Content-Type"] == "application/xml"
    assert_signed(xml_gw, callback)
    notification = defusedxml.ElementTree.fromstring(callback.body, forbid_dtd=True)
    assert notification.tag == "RefundNotification"
    values = xml_children(notification)
    assert values["EventId"].startswith("evt_")
    assert values == {
        "EventId": values["EventId"],
        "RefundId": result["RefundId"],
        "Reference": fields["reference"],
        "Status": "Succeeded",
        "Reason": "",
    }
    status = soap_result(soap_refund_status(xml_gw, fields["reference"]), "GetRefundStatus")
    assert status == {"RefundId": result["RefundId"], "Status": "Succeeded"}
    [refund] = xml_gw.refunds()
    assert (refund["kind"], refund["payment_id"], refund["amount"], refund["requests"]) == (
        "refund",
        payment_id,
        "125.50",
        2,
    )
    assert_no_more_refund_callbacks(receiver, 1)


def test_soap_refund_declined_failed_and_wrong_key(xml_gw: Sandbox, receiver: CallbackReceiver) -> None:
    payment_id = completed_soap_payment(xml_gw, receiver)
    too_much = refund_fields(receiver, payment_id, amount="125.51")
    result = soap_result(soap_refund(xml_gw, too_much), "ProcessRefund")
    assert result == {"RefundId": "", "Status": "Declined", "Reason": "amount_exceeds_payment"}
    assert soap_result(soap_refund_status(xml_gw, too_much["reference"]), "GetRefundStatus")["Status"] == "Failed"

    wrong_key = soap_refund(xml_gw, refund_fields(receiver, payment_id), api_key="not-the-key")
    assert (wrong_key.status_code, soap_fault_code(wrong_key)) == (500, "Client.Authentication")
    bad = soap_refund(xml_gw, refund_fields(receiver, payment_id, amount="lots"))
    assert (bad.status_code, soap_fault_code(bad)) == (500, "Client.BadRequest")

    xml_gw.set_mode(callback="failed")
    fields = refund_fields(receiver, payment_id)
    assert soap_result(soap_refund(xml_gw, fields), "ProcessRefund")["Status"] == "Accepted"
    [callback] = refund_callbacks(receiver, 1)
    values = xml_children(defusedxml.ElementTree.fromstring(callback.body, forbid_dtd=True))
    assert (values["Status"], values["Reason"]) == ("Failed", "rejected_by_bank")
    assert soap_result(soap_refund_status(xml_gw, fields["reference"]), "GetRefundStatus")["Status"] == "Failed"


@pytest.mark.parametrize(
    ("settings", "http_status", "fault_code"),
    [
        ({"mode": "error"}, 500, "Server.Error"),
        ({"mode": "flaky", "failure_rate": 1.0}, 500, "Server.Unavailable"),
        ({"mode": "down"}, 503, "Server.Unavailable"),
    ],
    ids=["error", "flaky", "down"],
)
def test_soap_refund_technical_faults_record_nothing(
    xml_gw: Sandbox, receiver: CallbackReceiver, settings: dict[str, Any], http_status: int, fault_code: str
) -> None:
    payment_id = completed_soap_payment(xml_gw, receiver)
    xml_gw.set_mode(**settings)
    response = soap_refund(xml_gw, refund_fields(receiver, payment_id))
    assert (response.status_code, soap_fault_code(response)) == (http_status, fault_code)
    assert xml_gw.refunds() == []


def test_soap_refund_decline_mode(xml_gw: Sandbox, receiver: CallbackReceiver) -> None:
    payment_id = completed_soap_payment(xml_gw, receiver)
    xml_gw.set_mode(mode="decline")
    result = soap_result(soap_refund(xml_gw, refund_fields(receiver, payment_id)), "ProcessRefund")
    assert (result["Status"], result["Reason"]) == ("Declined", "refund_rejected")
    assert_no_more_refund_callbacks(receiver, 0)


# --- Persistence ------------------------------------------------------------------------------


def test_refunds_survive_a_restart_with_their_pending_callback(tmp_path: Path, receiver: CallbackReceiver) -> None:
    receiver.clear()
    state_file = tmp_path / "eta.json"
    first = start_sandbox(tmp_path, "eta", "json", "--state-file", str(state_file), "--callback-delay", "60")
    try:
        fields = payment_fields(receiver) | {"amount": "20.00"}
        payment_id = json_pay(first, fields).json()["payment_id"]
        refund = refund_fields(receiver, payment_id, amount="20.00")
        refund_id = json_refund(first, refund).json()["refund_id"]
    finally:
        assert first.stop() == 0
    assert receiver.snapshot() == []

    second = start_sandbox(tmp_path, "eta", "json", "--state-file", str(state_file))
    try:
        [callback] = refund_callbacks(receiver, 1)
        assert (callback.json()["refund_id"], callback.json()["status"]) == (refund_id, "succeeded")
        assert second.get(f"/refunds/{refund['reference']}").json()["status"] == "succeeded"
        # The refund still counts against its payment.
        more = json_refund(second, refund_fields(receiver, payment_id, amount="0.01")).json()
        assert more == {"status": "declined", "reason": "amount_exceeds_payment"}
    finally:
        assert second.stop() == 0
