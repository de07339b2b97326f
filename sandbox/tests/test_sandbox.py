"""The sandbox gateway, run as a real process (`python -m sandbox` or `manage.py
run_sandbox_gateway`, which hands over to it), over HTTP.

No database: each sandbox is a subprocess on a free port, and callbacks land on a small
HTTP server running in a thread of the test process. Nothing here imports Paygate: these
tests speak the protocol from the contract, as a merchant would.
"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from pathlib import Path
from typing import Any

import defusedxml.ElementTree
import pytest
import requests

from sandbox.tests.support import (
    MANAGE_PY,
    PROJECT_ROOT,
    PYTHON_M,
    QUIET_PERIOD,
    SB,
    SOAP_ENV,
    STARTUP_DEADLINE,
    WSDL,
    WSDL_SOAP,
    XSD,
    CallbackReceiver,
    Sandbox,
    assert_signed,
    json_pay,
    payment_fields,
    soap_fault_code,
    soap_pay,
    soap_post,
    soap_result,
    soap_status,
    start_sandbox,
    xml_children,
)

pytestmark = pytest.mark.integration

# --- JSON protocol ----------------------------------------------------------------------------


def test_json_accept_and_signed_callback(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    fields = payment_fields(receiver)
    response = json_pay(json_gw, fields)
    assert response.status_code == 202
    answer = response.json()
    assert answer["status"] == "accepted"
    payment_id = answer["payment_id"]

    [callback] = receiver.wait_for(1)
    assert callback.path == "/callbacks"
    assert callback.headers["Content-Type"] == "application/json"
    assert_signed(json_gw, callback)
    body = callback.json()
    assert body["event_id"].startswith("evt_")
    assert body == {
        "event_id": body["event_id"],
        "payment_id": payment_id,
        "reference": fields["reference"],
        "status": "completed",
        "reason": None,
    }
    lookup = json_gw.get(f"/payments/{fields['reference']}")
    assert lookup.status_code == 200
    assert lookup.json()["status"] == "completed"
    assert lookup.json()["payment_id"] == payment_id

    [listed] = json_gw.payments()
    assert listed["reference"] == fields["reference"]
    assert listed["transaction_id"] == fields["transaction_id"]
    assert listed["amount"] == "125.50"
    assert listed["status"] == "completed"
    assert listed["requests"] == 1
    receiver.assert_stays_at(1)


def test_json_wrong_or_missing_api_key_is_refused(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    fields = payment_fields(receiver)
    assert json_pay(json_gw, fields, api_key="not-the-key").status_code == 401
    assert json_gw.post("/payments", json=fields).status_code == 401
    assert json_gw.payments() == []
    assert json_gw.get(f"/payments/{fields['reference']}").status_code == 404


def test_json_malformed_body_is_a_400(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    headers = {"Authorization": f"Bearer {json_gw.api_key}", "Content-Type": "application/json"}
    assert json_gw.post("/payments", data=b"{not json", headers=headers).status_code == 400
    assert json_gw.post("/payments", data=b"[1, 2]", headers=headers).status_code == 400
    missing = payment_fields(receiver)
    del missing["amount"]
    assert json_pay(json_gw, missing).status_code == 400
    bad_amount = payment_fields(receiver) | {"amount": "ten"}
    assert json_pay(json_gw, bad_amount).status_code == 400
    assert json_gw.payments() == []


def test_json_repeated_reference_is_idempotent(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    fields = payment_fields(receiver)
    first = json_pay(json_gw, fields)
    second = json_pay(json_gw, fields)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()

    [payment] = json_gw.payments()
    assert payment["requests"] == 2
    assert payment["payment_id"] == first.json()["payment_id"]
    receiver.wait_for(1)
    receiver.assert_stays_at(1)
    # Still the same answer once the payment has completed.
    third = json_pay(json_gw, fields)
    assert third.status_code == 202
    assert third.json()["payment_id"] == first.json()["payment_id"]
    assert json_gw.payments()[0]["requests"] == 3


def test_json_lookup_404_then_found(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    json_gw.set_mode(callback="none")
    fields = payment_fields(receiver)
    assert json_gw.get(f"/payments/{fields['reference']}").status_code == 404
    payment_id = json_pay(json_gw, fields).json()["payment_id"]
    path = f"/payments/{fields['reference']}"
    assert json_gw.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    lookup = json_gw.get(path, headers={"Authorization": f"Bearer {json_gw.api_key}"})
    assert lookup.status_code == 200
    assert lookup.json() == {
        "payment_id": payment_id,
        "reference": fields["reference"],
        "status": "accepted",
        "reason": None,
    }


# --- Modes ------------------------------------------------------------------------------------


def test_mode_down_answers_503_and_records_nothing(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    json_gw.set_mode(mode="down")
    assert json_gw.get("/health").status_code == 503
    fields = payment_fields(receiver)
    assert json_pay(json_gw, fields).status_code == 503
    assert json_gw.get(f"/payments/{fields['reference']}").status_code == 503
    assert json_gw.get("/_sandbox/mode").json()["mode"] == "down"
    assert json_gw.payments() == []
    json_gw.set_mode(mode="ok")
    assert json_gw.get("/health").status_code == 200
    assert json_gw.get(f"/payments/{fields['reference']}").status_code == 404


def test_mode_error_answers_500_and_records_nothing(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    json_gw.set_mode(mode="error")
    fields = payment_fields(receiver)
    assert json_pay(json_gw, fields).status_code == 500
    assert json_gw.get("/health").status_code == 200
    assert json_gw.get(f"/payments/{fields['reference']}").status_code == 404
    assert json_gw.payments() == []
    receiver.assert_stays_at(0)


def test_mode_timeout_records_but_answers_late(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    json_gw.set_mode(mode="timeout")
    fields = payment_fields(receiver)
    with pytest.raises(requests.ReadTimeout):
        json_pay(json_gw, fields, timeout=(2, 1))

    started = time.monotonic()
    lookup = json_gw.get(f"/payments/{fields['reference']}")
    assert time.monotonic() - started < 0.9
    assert lookup.status_code == 200
    assert lookup.json()["status"] in ("accepted", "completed")
    [payment] = json_gw.payments()
    assert payment["reference"] == fields["reference"]
    [callback] = receiver.wait_for(1)
    assert callback.json()["payment_id"] == lookup.json()["payment_id"]


def test_mode_decline(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    json_gw.set_mode(mode="decline")
    fields = payment_fields(receiver)
    response = json_pay(json_gw, fields)
    assert response.status_code == 200
    assert response.json() == {"status": "declined", "reason": "insufficient_funds"}
    repeat = json_pay(json_gw, fields)
    assert repeat.status_code == 200
    assert repeat.json() == response.json()

    [payment] = json_gw.payments()
    assert payment["status"] == "declined"
    assert payment["requests"] == 2
    assert json_gw.get(f"/payments/{fields['reference']}").json()["status"] == "failed"
    receiver.assert_stays_at(0)


def test_mode_flaky(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    json_gw.set_mode(mode="flaky", failure_rate=1.0)
    for _ in range(3):
        assert json_pay(json_gw, payment_fields(receiver)).status_code == 503
    assert json_gw.payments() == []

    json_gw.set_mode(failure_rate=0.0)
    for _ in range(3):
        assert json_pay(json_gw, payment_fields(receiver)).status_code == 202
    assert len(json_gw.payments()) == 3
    assert json_gw.get("/_sandbox/mode").json()["mode"] == "flaky"


def test_callback_none(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    json_gw.set_mode(callback="none")
    fields = payment_fields(receiver)
    assert json_pay(json_gw, fields).status_code == 202
    receiver.assert_stays_at(0)
    assert json_gw.get(f"/payments/{fields['reference']}").json()["status"] == "accepted"


def test_callback_failed(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    json_gw.set_mode(callback="failed")
    fields = payment_fields(receiver)
    payment_id = json_pay(json_gw, fields).json()["payment_id"]
    [callback] = receiver.wait_for(1)
    assert_signed(json_gw, callback)
    body = callback.json()
    assert (body["payment_id"], body["status"], body["reason"]) == (payment_id, "failed", "rejected_by_bank")
    assert json_gw.get(f"/payments/{fields['reference']}").json()["status"] == "failed"


def test_duplicate_callbacks(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    json_gw.set_mode(duplicate_callbacks=True)
    json_pay(json_gw, payment_fields(receiver))
    first, second = receiver.wait_for(2)
    assert first.json() == second.json()
    assert first.json()["event_id"].startswith("evt_")
    assert_signed(json_gw, first)
    assert_signed(json_gw, second)
    receiver.assert_stays_at(2)


def test_callback_jitter_reorders_deliveries(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    """Each callback waits callback_delay + uniform(0, jitter): sent in one order, they arrive in another."""
    assert json_gw.set_mode(callback_jitter=1.5)["callback_jitter"] == 1.5
    assert json_gw.get("/_sandbox/mode").json()["callback_jitter"] == 1.5
    # The chance that 12 uniformly delayed callbacks all keep their sending order is 1/12!.
    references = []
    for _ in range(12):
        fields = payment_fields(receiver)
        assert json_pay(json_gw, fields).status_code == 202
        references.append(fields["reference"])
    received = [callback.json()["reference"] for callback in receiver.wait_for(12, timeout=15)]
    assert sorted(received) == sorted(references)
    assert received != references
    receiver.assert_stays_at(12)

    for invalid in ({"callback_jitter": -0.1}, {"callback_jitter": 60.5}, {"callback_jitter": "1"},
                    {"callback_jitter": True}, {"callback_jitter": None}):  # fmt: skip
        assert json_gw.post("/_sandbox/mode", json=invalid).status_code == 400, invalid
    assert json_gw.post("/_sandbox/mode", data=b'{"callback_jitter": NaN}').status_code == 400
    assert json_gw.set_mode(callback_jitter=60)["callback_jitter"] == 60.0
    assert json_gw.set_mode(callback_jitter=0)["callback_jitter"] == 0.0
    json_gw.set_mode(callback_jitter=2.0)
    json_gw.reset()
    assert json_gw.get("/_sandbox/mode").json()["callback_jitter"] == 0.0


def test_failed_callback_delivery_is_retried(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    receiver.fail_next = 1
    json_pay(json_gw, payment_fields(receiver))
    failed, retried = receiver.wait_for(2)
    assert failed.json() == retried.json()
    assert_signed(json_gw, retried)
    receiver.assert_stays_at(2)


def test_reset_returns_once_no_callback_is_in_flight(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    """After a reset nothing from before it reaches the merchant, not even a delivery under way."""
    receiver.answering.clear()
    json_pay(json_gw, payment_fields(receiver))
    receiver.wait_for(1)  # delivered, not yet answered
    with ThreadPoolExecutor(max_workers=1) as pool:
        reset = pool.submit(json_gw.post, "/_sandbox/reset", timeout=15)
        with pytest.raises(FuturesTimeout):
            reset.result(timeout=QUIET_PERIOD)
        receiver.answering.set()
        assert reset.result(timeout=10).status_code == 200
    assert json_gw.payments() == []
    receiver.assert_stays_at(1)


DEFAULT_MODE = {
    "mode": "ok",
    "failure_rate": 0.3,
    "decline_rate": 0.0,
    "latency_ms": 0,
    "callback": "completed",
    "duplicate_callbacks": False,
    "callback_jitter": 0.0,
    "action": "none",
}


def test_mode_endpoint(json_gw: Sandbox) -> None:
    assert json_gw.get("/_sandbox/mode").json() == DEFAULT_MODE
    updated = json_gw.set_mode(mode="flaky", failure_rate=0.5)
    assert updated == {
        "mode": "flaky", "failure_rate": 0.5, "decline_rate": 0.0, "latency_ms": 0, "callback": "completed",
        "duplicate_callbacks": False, "callback_jitter": 0.0, "action": "none",
    }  # fmt: skip
    for invalid in ({"mode": "sideways"}, {"failure_rate": 1.5}, {"failure_rate": "high"}, {"callback": "maybe"},
                    {"duplicate_callbacks": "yes"}, {"colour": "blue"}, {"action": "teleport"}):  # fmt: skip
        assert json_gw.post("/_sandbox/mode", json=invalid).status_code == 400, invalid
    assert json_gw.post("/_sandbox/mode", data=b"nope").status_code == 400
    assert json_gw.get("/_sandbox/mode").json() == updated
    json_gw.reset()
    assert json_gw.get("/_sandbox/mode").json()["mode"] == "ok"


@pytest.mark.parametrize(
    "invalid",
    [
        {"decline_rate": -0.1}, {"decline_rate": 1.01}, {"decline_rate": "0.5"}, {"decline_rate": True},
        {"decline_rate": None}, {"latency_ms": -1}, {"latency_ms": 60_001}, {"latency_ms": 2.5},
        {"latency_ms": "100"}, {"latency_ms": True}, {"latency_ms": None}, {"latency_ms": [100]},
        {"mode": "ok", "decline_rate": 2},
    ],
)  # fmt: skip
def test_decline_rate_and_latency_are_validated(json_gw: Sandbox, invalid: dict[str, Any]) -> None:
    response = json_gw.post("/_sandbox/mode", json=invalid)
    assert response.status_code == 400, invalid
    assert response.json()["error"] == "bad_request"
    assert json_gw.get("/_sandbox/mode").json() == DEFAULT_MODE  # nothing changed, not even `mode`


def test_decline_rate_and_latency_limits_nan_and_reset(json_gw: Sandbox) -> None:
    for body in (b'{"decline_rate": NaN}', b'{"latency_ms": NaN}', b'{"latency_ms": Infinity}'):
        assert json_gw.post("/_sandbox/mode", data=body).status_code == 400, body
    settings = json_gw.set_mode(decline_rate=1, latency_ms=60_000.0)
    assert (settings["decline_rate"], settings["latency_ms"]) == (1.0, 60_000)
    settings = json_gw.set_mode(decline_rate=0.25, latency_ms=0)
    assert (settings["decline_rate"], settings["latency_ms"]) == (0.25, 0)
    json_gw.set_mode(decline_rate=0.5, latency_ms=20)
    json_gw.reset()
    assert json_gw.get("/_sandbox/mode").json() == DEFAULT_MODE


def test_decline_rate_declines_a_share_of_payments_in_ok_mode(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    json_gw.set_mode(decline_rate=1.0)
    declined = payment_fields(receiver)
    response = json_pay(json_gw, declined)
    assert (response.status_code, response.json()) == (200, {"status": "declined", "reason": "insufficient_funds"})
    json_gw.set_mode(decline_rate=0.0)
    # A repeat answers as the first time, whatever the rate is now.
    assert json_pay(json_gw, declined).json() == {"status": "declined", "reason": "insufficient_funds"}
    assert json_pay(json_gw, payment_fields(receiver)).status_code == 202

    json_gw.set_mode(decline_rate=0.5, callback="none")
    answers = [json_pay(json_gw, payment_fields(receiver)).status_code for _ in range(100)]
    assert set(answers) == {200, 202}
    # Binomial(100, 0.5): outside 25..75 with a probability below 1e-6.
    assert 25 <= answers.count(200) <= 75, answers.count(200)
    statuses = [payment["status"] for payment in json_gw.payments()]
    assert statuses.count("declined") == answers.count(200) + 1

    # Only in `ok` mode: `flaky` answers what it does not fail, `decline` declines everything anyway.
    json_gw.set_mode(mode="flaky", failure_rate=0.0, decline_rate=1.0)
    assert json_pay(json_gw, payment_fields(receiver)).status_code == 202
    json_gw.set_mode(mode="timeout", decline_rate=1.0)
    with pytest.raises(requests.ReadTimeout):
        json_pay(json_gw, payment_fields(receiver), timeout=(2, 0.5))
    assert json_gw.payments()[-1]["status"] == "accepted"


def test_soap_decline_rate(xml_gw: Sandbox, receiver: CallbackReceiver) -> None:
    xml_gw.set_mode(decline_rate=1.0)
    result = soap_result(soap_pay(xml_gw, payment_fields(receiver)), "ProcessPayment")
    assert (result["Status"], result["Reason"]) == ("Declined", "insufficient_funds")
    receiver.assert_stays_at(0)


def test_latency_delays_every_protocol_answer_but_not_the_control_endpoints(
    json_gw: Sandbox, receiver: CallbackReceiver
) -> None:
    json_gw.set_mode(latency_ms=600)
    fields = payment_fields(receiver)
    for send in (
        lambda: json_gw.get("/health"),
        lambda: json_pay(json_gw, fields),
        lambda: json_gw.get(f"/payments/{fields['reference']}"),
        lambda: json_gw.get("/nowhere"),
    ):
        started = time.monotonic()
        response = send()
        assert time.monotonic() - started >= 0.6, response.request.url
    assert response.status_code == 404
    # The control endpoints answer at once: a test can always switch the sandbox back.
    started = time.monotonic()
    assert json_gw.get("/_sandbox/mode").json()["latency_ms"] == 600
    assert json_gw.payments()[0]["reference"] == fields["reference"]
    assert time.monotonic() - started < 0.6
    # Other modes are late too.
    json_gw.set_mode(mode="down")
    started = time.monotonic()
    assert json_gw.get("/health").status_code == 503
    assert time.monotonic() - started >= 0.6


def test_latency_does_not_serialize_requests(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    """Each request waits in its own thread: eight at once take about one latency, not eight."""
    latency = 1.5
    json_gw.set_mode(latency_ms=int(latency * 1000), callback="none")
    count = 8

    def pay(_: int) -> tuple[float, float, int]:
        started = time.monotonic()
        status = json_pay(json_gw, payment_fields(receiver), timeout=30).status_code
        return started, time.monotonic(), status

    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(pay, range(count)))
    assert [status for _, _, status in results] == [202] * count
    assert all(ended - started >= latency for started, ended, _ in results)
    span = max(ended for _, ended, _ in results) - min(started for started, _, _ in results)
    # Served one after the other they would take count * latency (12 s).
    assert span < 3 * latency, span
    assert len(json_gw.payments()) == count


# --- SOAP protocol ----------------------------------------------------------------------------


@pytest.mark.parametrize("quoted", [True, False])
def test_soap_accept_and_signed_callback(xml_gw: Sandbox, receiver: CallbackReceiver, quoted: bool) -> None:
    fields = payment_fields(receiver)
    response = soap_pay(xml_gw, fields, quoted=quoted)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xml")
    result = soap_result(response, "ProcessPayment")
    assert result["Status"] == "Accepted"
    assert result["PaymentId"]

    [callback] = receiver.wait_for(1)
    assert callback.headers["Content-Type"] == "application/xml"
    assert_signed(xml_gw, callback)
    notification = defusedxml.ElementTree.fromstring(callback.body, forbid_dtd=True)
    assert notification.tag == "PaymentNotification"
    values = xml_children(notification)
    assert values["EventId"].startswith("evt_")
    assert values == {
        "EventId": values["EventId"],
        "PaymentId": result["PaymentId"],
        "Reference": fields["reference"],
        "Status": "Completed",
        "Reason": "",
    }
    status = soap_result(soap_status(xml_gw, fields["reference"]), "GetPaymentStatus")
    assert status == {"PaymentId": result["PaymentId"], "Status": "Completed"}


def test_soap_repeat_is_idempotent_and_lookup(xml_gw: Sandbox, receiver: CallbackReceiver) -> None:
    fields = payment_fields(receiver)
    not_found = soap_status(xml_gw, fields["reference"])
    assert not_found.status_code == 500
    assert soap_fault_code(not_found) == "Client.NotFound"

    xml_gw.set_mode(callback="failed")
    first = soap_result(soap_pay(xml_gw, fields), "ProcessPayment")
    second = soap_result(soap_pay(xml_gw, fields), "ProcessPayment")
    assert first == second
    [payment] = xml_gw.payments()
    assert payment["requests"] == 2

    [callback] = receiver.wait_for(1)
    values = xml_children(defusedxml.ElementTree.fromstring(callback.body, forbid_dtd=True))
    assert (values["Status"], values["Reason"]) == ("Failed", "rejected_by_bank")
    receiver.assert_stays_at(1)
    status = soap_result(soap_status(xml_gw, fields["reference"]), "GetPaymentStatus")
    assert status == {"PaymentId": first["PaymentId"], "Status": "Failed"}


def test_soap_decline(xml_gw: Sandbox, receiver: CallbackReceiver) -> None:
    xml_gw.set_mode(mode="decline")
    response = soap_pay(xml_gw, payment_fields(receiver))
    assert response.status_code == 200
    result = soap_result(response, "ProcessPayment")
    assert (result["Status"], result["Reason"]) == ("Declined", "insufficient_funds")
    assert xml_gw.payments()[0]["status"] == "declined"
    receiver.assert_stays_at(0)


def test_soap_wrong_api_key_is_an_authentication_fault(xml_gw: Sandbox, receiver: CallbackReceiver) -> None:
    response = soap_pay(xml_gw, payment_fields(receiver), api_key="not-the-key")
    assert response.status_code == 500
    assert soap_fault_code(response) == "Client.Authentication"
    assert xml_gw.payments() == []


@pytest.mark.parametrize(
    ("settings", "http_status", "fault_code"),
    [
        ({"mode": "error"}, 500, "Server.Error"),
        ({"mode": "flaky", "failure_rate": 1.0}, 500, "Server.Unavailable"),
        ({"mode": "down"}, 503, "Server.Unavailable"),
    ],
)
def test_soap_technical_faults_record_nothing(
    xml_gw: Sandbox, receiver: CallbackReceiver, settings: dict[str, Any], http_status: int, fault_code: str
) -> None:
    xml_gw.set_mode(**settings)
    response = soap_pay(xml_gw, payment_fields(receiver))
    assert response.status_code == http_status
    assert soap_fault_code(response) == fault_code
    assert xml_gw.get("/health").status_code == (503 if settings["mode"] == "down" else 200)
    assert xml_gw.payments() == []


def test_soap_timeout_mode(xml_gw: Sandbox, receiver: CallbackReceiver) -> None:
    xml_gw.set_mode(mode="timeout")
    fields = payment_fields(receiver)
    with pytest.raises(requests.ReadTimeout):
        soap_pay(xml_gw, fields, timeout=(2, 1))
    started = time.monotonic()
    status = soap_result(soap_status(xml_gw, fields["reference"]), "GetPaymentStatus")
    assert time.monotonic() - started < 0.9
    assert status["Status"] in ("Accepted", "Completed")
    assert len(xml_gw.payments()) == 1


def test_wsdl(xml_gw: Sandbox) -> None:
    response = xml_gw.get("/soap?wsdl")
    assert response.status_code == 200
    root = defusedxml.ElementTree.fromstring(response.content, forbid_dtd=True)
    assert root.tag == f"{{{WSDL}}}definitions"
    assert root.get("targetNamespace") == SB
    operations = {op.get("name") for op in root.iterfind(f"{{{WSDL}}}portType/{{{WSDL}}}operation")}
    assert operations == {"ProcessPayment", "GetPaymentStatus", "ProcessRefund", "GetRefundStatus"}
    binding = root.find(f"{{{WSDL}}}binding/{{{WSDL_SOAP}}}binding")
    assert binding is not None and binding.get("style") == "document"
    actions = {op.get("soapAction") for op in root.iter(f"{{{WSDL_SOAP}}}operation")}
    assert actions == operations
    schema = root.find(f"{{{WSDL}}}types/{{{XSD}}}schema")
    assert schema is not None
    elements = {element.get("name"): element for element in schema.iterfind(f"{{{XSD}}}element")}
    assert set(elements) == operations | {f"{operation}Response" for operation in operations}

    def fields(name: str) -> list[str | None]:
        return [field.get("name") for field in elements[name].iter(f"{{{XSD}}}element")][1:]  # iter() starts at itself

    assert fields("ProcessRefund") == ["ApiKey", "Reference", "PaymentId", "Amount", "Currency", "CallbackUrl"]
    assert fields("ProcessRefundResponse") == ["RefundId", "Status", "Reason"]
    assert fields("GetRefundStatus") == ["ApiKey", "Reference"]
    assert fields("GetRefundStatusResponse") == ["RefundId", "Status"]
    statuses = {value.get("value") for value in elements["GetRefundStatusResponse"].iter(f"{{{XSD}}}enumeration")}
    assert statuses == {"Accepted", "Succeeded", "Failed"}
    assert {body.get("use") for body in root.iter(f"{{{WSDL_SOAP}}}body")} == {"literal"}
    address = root.find(f"{{{WSDL}}}service/{{{WSDL}}}port/{{{WSDL_SOAP}}}address")
    assert address is not None and address.get("location") == xml_gw.base_url + "/soap"


XXE_BODIES = {
    "external_entity": (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:sb="{SB}"><soapenv:Body><sb:ProcessPayment>'
        "<sb:ApiKey>demo-beta-api-key</sb:ApiKey><sb:Reference>&xxe;</sb:Reference>"
        "</sb:ProcessPayment></soapenv:Body></soapenv:Envelope>"
    ),
    "entity_expansion": (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:sb="{SB}"><soapenv:Body><sb:ProcessPayment>'
        "<sb:ApiKey>demo-beta-api-key</sb:ApiKey><sb:Reference>&b;</sb:Reference>"
        "</sb:ProcessPayment></soapenv:Body></soapenv:Envelope>"
    ),
    "bare_dtd": '<?xml version="1.0"?><!DOCTYPE Envelope><Envelope/>',
    "malformed": "<soapenv:Envelope",
}


@pytest.mark.parametrize("name", sorted(XXE_BODIES))
def test_soap_dtd_and_malformed_xml_are_refused(xml_gw: Sandbox, name: str) -> None:
    response = soap_post(xml_gw, "ProcessPayment", XXE_BODIES[name].encode())
    assert response.status_code == 500
    assert soap_fault_code(response) == "Client.BadRequest"
    assert "root:" not in response.text
    assert xml_gw.payments() == []


# --- Persistence and process lifecycle --------------------------------------------------------


def test_state_file_survives_a_restart(tmp_path: Path, receiver: CallbackReceiver) -> None:
    receiver.clear()
    state_file = tmp_path / "state" / "gamma.json"
    first = start_sandbox(tmp_path, "gamma", "json", "--state-file", str(state_file))
    try:
        done = payment_fields(receiver)
        done_id = json_pay(first, done).json()["payment_id"]
        receiver.wait_for(1)
        assert first.stop() == 0
        assert "sandbox gamma (json) listening on http://127.0.0.1:" in first.log()
    finally:
        first.stop()
    assert state_file.exists()

    second = start_sandbox(tmp_path, "gamma", "json", "--state-file", str(state_file))
    try:
        lookup = second.get(f"/payments/{done['reference']}").json()
        assert (lookup["payment_id"], lookup["status"]) == (done_id, "completed")
        repeat = json_pay(second, done)
        assert (repeat.status_code, repeat.json()["payment_id"]) == (202, done_id)
        [payment] = second.payments()
        assert payment["requests"] == 2
        receiver.assert_stays_at(1)
    finally:
        assert second.stop() == 0


def test_pending_callback_is_sent_after_a_restart(tmp_path: Path, receiver: CallbackReceiver) -> None:
    receiver.clear()
    state_file = tmp_path / "delta.json"
    first = start_sandbox(tmp_path, "delta", "json", "--state-file", str(state_file), "--callback-delay", "60")
    try:
        fields = payment_fields(receiver)
        payment_id = json_pay(first, fields).json()["payment_id"]
    finally:
        assert first.stop() == 0
    assert receiver.snapshot() == []

    second = start_sandbox(tmp_path, "delta", "json", "--state-file", str(state_file))
    try:
        [callback] = receiver.wait_for(1)
        assert callback.json()["payment_id"] == payment_id
        assert second.get(f"/payments/{fields['reference']}").json()["status"] == "completed"
    finally:
        assert second.stop() == 0


def test_python_m_sandbox_serves_without_manage_py(tmp_path: Path, receiver: CallbackReceiver) -> None:
    receiver.clear()
    gw = start_sandbox(tmp_path, "epsilon", "json", launcher=PYTHON_M)
    try:
        fields = payment_fields(receiver)
        assert json_pay(gw, fields).status_code == 202
        [callback] = receiver.wait_for(1)
        assert_signed(gw, callback)
        assert gw.get(f"/payments/{fields['reference']}").json()["status"] == "completed"
    finally:
        assert gw.stop() == 0
    log = gw.log()
    assert "sandbox epsilon (json) listening on http://127.0.0.1:" in log
    assert "sandbox epsilon: POST /payments -> 202" in log
    assert "sandbox epsilon stopped" in log


@pytest.mark.parametrize("launcher", [MANAGE_PY, PYTHON_M], ids=["manage.py", "python-m"])
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--port", "70000"), "--port must be between 0 and 65535"),
        (("--port", "0", "--code", " "), "--code must not be empty"),
        (("--port", "0", "--callback-delay", "-1"), "must not be negative"),
    ],
    ids=["port", "code", "delay"],
)
def test_invalid_options_are_refused(launcher: tuple[str, ...], options: tuple[str, ...], message: str) -> None:
    command = [sys.executable, *launcher, "--code", "zeta", "--format", "json", *options]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=STARTUP_DEADLINE)
    assert result.returncode == 1, result
    assert message in result.stderr
