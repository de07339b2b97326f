"""Gateway adapters against a real local HTTP server replaying recorded gateway payloads.

No database, no mocking of `requests`: each test scripts what the stub gateway answers
and, where it matters, asserts what the adapter actually put on the wire.
"""

from __future__ import annotations

import json
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import requests

from core import http as core_http
from core.http import HttpClient, classify
from gateways.adapters import ADAPTERS, GatewayAdapter, JsonGatewayAdapter, SoapGatewayAdapter, get_adapter
from gateways.adapters import http as gateway_http
from gateways.adapters.soap_transformers import SANDBOX_NS
from gateways.types import (
    CallbackNotification,
    CallbackParseError,
    HealthResult,
    LookupStatus,
    Outcome,
    RefundLookupStatus,
    RefundNotification,
)
from testing.fakegateway import (
    API_KEY,
    READ_TIMEOUT,
    SANDBOX,
    SOAP_ENV,
    Canned,
    StubGateway,
    credentials,
    json_canned,
    make_refund,
    make_request,
    payload,
    soap_fault,
    xml_canned,
)

GARBAGE = Canned(200, b"\x00\xffnot a reply at all<<<", "text/plain")


@dataclass(frozen=True)
class Side:
    """A payment's or a refund's calls on an adapter: the same outcome rules, other paths and operations."""

    name: str
    path: str  # where the JSON adapter creates one; its look-up is at path/<reference>
    reference: str
    make: Callable[..., Any]
    json_accepted: str
    xml_accepted: str
    not_found: LookupStatus | RefundLookupStatus
    unavailable: LookupStatus | RefundLookupStatus

    def create(self, adapter: GatewayAdapter, **changes: object) -> Any:
        request = self.make(**changes)
        return adapter.create_payment(request) if self.name == "payment" else adapter.create_refund(request)

    def lookup(self, adapter: GatewayAdapter, reference: str) -> Any:
        return adapter.lookup_payment(reference) if self.name == "payment" else adapter.lookup_refund(reference)


PAYMENT = Side(
    "payment",
    "/payments",
    "att_0001",
    make_request,
    "json/create_accepted.json",
    "xml/create_accepted.xml",
    LookupStatus.NOT_FOUND,
    LookupStatus.UNAVAILABLE,
)
REFUND = Side(
    "refund",
    "/refunds",
    "rf_0001",
    make_refund,
    "json/refund_accepted.json",
    "xml/refund_accepted.xml",
    RefundLookupStatus.NOT_FOUND,
    RefundLookupStatus.UNAVAILABLE,
)
# A test of both sides: a payment's and a refund's calls meet the same rules.
SIDES = pytest.mark.parametrize("side", [PAYMENT, REFUND], ids=["payment", "refund"])


def sides_with(names: tuple[str, ...], cases: dict[str, tuple[Any, ...]]) -> pytest.MarkDecorator:
    """Both sides, each with its own values of `names`."""
    sides = {"payment": PAYMENT, "refund": REFUND}
    return pytest.mark.parametrize(
        ("side", *names), [pytest.param(sides[name], *values, id=name) for name, values in cases.items()]
    )


# --- JSON: create_payment --------------------------------------------------------------------


def test_json_accepted_and_the_request_on_the_wire(gateway: StubGateway, json_adapter: JsonGatewayAdapter) -> None:
    gateway.answer("POST", "/payments", json_canned(202, "json/create_accepted.json"))

    result = json_adapter.create_payment(make_request())

    assert result.outcome is Outcome.ACCEPTED
    assert result.payment_id == "pay_7f3a91c2"
    assert result.error is None and result.reason is None
    assert result.http_status == 202
    assert result.latency_ms is not None and result.latency_ms > 0
    sent = gateway.last
    assert (sent.method, sent.path) == ("POST", "/payments")
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["idempotency-key"] == "att_0001"
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.body) == {
        "reference": "att_0001",
        "transaction_id": "txn_42",
        "type": "deposit",
        "amount": "25.00",
        "currency": "EUR",
        "country": "DE",
        "customer_id": "cust_<7>&'\"",
        "callback_url": "https://paygate.example/callbacks/sandbox?x=1&y=2",
    }


@pytest.mark.parametrize(
    ("amount", "wire"), [(Decimal("1E+2"), "100"), (Decimal("0.5"), "0.5"), (Decimal("1000"), "1000")]
)
def test_json_amount_is_a_plain_decimal_string(
    gateway: StubGateway, json_adapter: JsonGatewayAdapter, amount: Decimal, wire: str
) -> None:
    gateway.answer("POST", "/payments", json_canned(202, "json/create_accepted.json"))
    json_adapter.create_payment(make_request(amount=amount))
    assert json.loads(gateway.last.body)["amount"] == wire


def test_json_declined(gateway: StubGateway, json_adapter: JsonGatewayAdapter) -> None:
    gateway.answer("POST", "/payments", json_canned(200, "json/create_declined.json"))
    result = json_adapter.create_payment(make_request())
    assert result.outcome is Outcome.DECLINED
    assert result.reason == "insufficient_funds"
    assert result.error is None


@sides_with(
    ("reply", "reason"),
    {
        "payment": (b'{"status": "declined", "reason": "no\\u0000funds\\udfff"}', "no\\x00funds\\udfff"),
        "refund": (b'{"status": "declined", "reason": "no\\u0000way\\ud800"}', "no\\x00way\\ud800"),
    },
)
def test_json_decline_reason_is_kept_with_unstorable_text_escaped(
    gateway: StubGateway, json_adapter: JsonGatewayAdapter, side: Side, reply: bytes, reason: str
) -> None:
    gateway.answer("POST", side.path, Canned(200, reply))
    result = side.create(json_adapter)
    assert (result.outcome, result.reason) == (Outcome.DECLINED, reason)


@pytest.mark.parametrize(
    ("status", "name", "outcome", "error"),
    [
        (503, "json/error_503.json", Outcome.NOT_SUBMITTED, "service_unavailable"),
        (500, "json/error_500.json", Outcome.UNKNOWN, "server_error"),
        (502, "json/error_500.json", Outcome.UNKNOWN, "server_error"),
        (400, "json/error_401.json", Outcome.NOT_SUBMITTED, "rejected_400"),
        (401, "json/error_401.json", Outcome.NOT_SUBMITTED, "rejected_401"),
        (409, "json/error_500.json", Outcome.UNKNOWN, "idempotency_conflict"),
    ],
)
@SIDES
def test_json_error_statuses(
    gateway: StubGateway,
    json_adapter: JsonGatewayAdapter,
    side: Side,
    status: int,
    name: str,
    outcome: Outcome,
    error: str,
) -> None:
    gateway.answer("POST", side.path, json_canned(status, name))
    result = side.create(json_adapter)
    assert (result.outcome, result.error, result.http_status) == (outcome, error, status)


@pytest.mark.parametrize(
    "canned",
    [
        GARBAGE,
        Canned(202, b'{"payment_id": "p1", "status": "accepted"'),
        json_canned(202, "json/create_wrong_shape.json"),
        json_canned(202, "json/create_accepted_without_payment_id.json"),
        json_canned(202, "json/create_unknown_status.json"),
        Canned(202, b'{"payment_id": 17, "status": "accepted"}'),
        Canned(200, b'{"status": "declined", "reason": ["x"]}'),
        Canned(202, b'{"payment_id": "a", "payment_id": "b", "status": "accepted"}'),
        Canned(202, b'{"payment_id": "p1", "status": "accepted", "amount": NaN}'),
        Canned(202, b"[" * 100_000),
        Canned(202, b'{"payment_id": "p\\u00001", "status": "accepted"}'),
        Canned(202, b'{"payment_id": "p\\ud800", "status": "accepted"}'),
    ],
    ids=[
        "garbage",
        "truncated",
        "array",
        "no-payment-id",
        "unknown-status",
        "id-not-string",
        "reason-not-string",
        "duplicate-key",
        "nan",
        "deep-nesting",
        "nul-in-payment-id",
        "surrogate-in-payment-id",
    ],
)
def test_json_malformed_reply_is_unknown(
    gateway: StubGateway, json_adapter: JsonGatewayAdapter, canned: Canned
) -> None:
    gateway.answer("POST", "/payments", canned)
    result = json_adapter.create_payment(make_request())
    assert (result.outcome, result.error) == (Outcome.UNKNOWN, "malformed_reply")


@SIDES
def test_json_timeout_is_unknown(gateway: StubGateway, json_adapter: JsonGatewayAdapter, side: Side) -> None:
    gateway.answer("POST", side.path, Canned(202, payload(side.json_accepted), hang=True))
    started = time.monotonic()
    result = side.create(json_adapter)
    assert (result.outcome, result.error) == (Outcome.UNKNOWN, "timeout")
    assert result.http_status is None
    assert time.monotonic() - started < 2
    assert gateway.last.path == side.path  # it was sent: that is why the outcome is unknown


@SIDES
def test_json_connection_refused_is_not_submitted(http_client: HttpClient, closed_port: int, side: Side) -> None:
    result = side.create(JsonGatewayAdapter(credentials(f"http://127.0.0.1:{closed_port}"), http_client))
    assert (result.outcome, result.error) == (Outcome.NOT_SUBMITTED, "connection_refused")
    assert result.latency_ms is not None


@sides_with(
    ("json_changes", "soap_changes"),
    {
        "payment": ({"amount": Decimal("NaN")}, {"customer_id": "bad\x00id"}),
        "refund": ({"amount": Decimal("Infinity")}, {"payment_id": "bad\x00id"}),
    },
)
def test_invalid_amount_is_a_caller_error(
    json_adapter: JsonGatewayAdapter,
    soap_adapter: SoapGatewayAdapter,
    side: Side,
    json_changes: dict[str, object],
    soap_changes: dict[str, object],
) -> None:
    with pytest.raises(ValueError):
        side.create(json_adapter, **json_changes)
    with pytest.raises(ValueError):
        side.create(soap_adapter, **soap_changes)


# --- JSON: lookup_payment --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("json/lookup_accepted.json", LookupStatus.ACCEPTED),
        ("json/lookup_completed.json", LookupStatus.COMPLETED),
        ("json/lookup_failed.json", LookupStatus.FAILED),
    ],
)
def test_json_lookup_found(
    gateway: StubGateway, json_adapter: JsonGatewayAdapter, name: str, status: LookupStatus
) -> None:
    gateway.answer("GET", "/payments/att%2F0001", json_canned(200, name))
    result = json_adapter.lookup_payment("att/0001")
    assert (result.status, result.payment_id, result.error) == (status, "pay_7f3a91c2", None)
    assert result.latency_ms is not None
    assert gateway.last.headers["authorization"] == f"Bearer {API_KEY}"


@SIDES
def test_json_lookup_not_found(gateway: StubGateway, json_adapter: JsonGatewayAdapter, side: Side) -> None:
    gateway.answer("GET", f"{side.path}/{side.reference}", json_canned(404, "json/error_404.json"))
    assert side.lookup(json_adapter, side.reference).status is side.not_found


@pytest.mark.parametrize(
    ("canned", "error"),
    [
        (json_canned(500, "json/error_500.json"), "server_error"),
        (json_canned(503, "json/error_503.json"), "service_unavailable"),
        (json_canned(401, "json/error_401.json"), "rejected_401"),
        (GARBAGE, "malformed_reply"),
        (json_canned(200, "json/create_declined.json"), "malformed_reply"),
        (Canned(200, b'{"status": "completed"}'), "malformed_reply"),
        (Canned(200, payload("json/lookup_completed.json"), hang=True), "timeout"),
    ],
    ids=["500", "503", "401", "garbage", "wrong-shape", "no-payment-id", "timeout"],
)
def test_json_lookup_unavailable(
    gateway: StubGateway, json_adapter: JsonGatewayAdapter, canned: Canned, error: str
) -> None:
    gateway.answer("GET", "/payments/att_0001", canned)
    result = json_adapter.lookup_payment("att_0001")
    assert (result.status, result.error) == (LookupStatus.UNAVAILABLE, error)


@SIDES
def test_json_lookup_connection_refused(http_client: HttpClient, closed_port: int, side: Side) -> None:
    result = side.lookup(JsonGatewayAdapter(credentials(f"http://127.0.0.1:{closed_port}"), http_client), "a")
    assert (result.status, result.error) == (side.unavailable, "connection_refused")


# --- JSON: callbacks -------------------------------------------------------------------------


def test_json_callback_completed() -> None:
    notification = JsonGatewayAdapter.parse_callback(payload("json/callback_completed.json"))
    assert notification == CallbackNotification(
        event_id="evt_01HZX4", reference="att_0001", status="completed", payment_id="pay_7f3a91c2", reason=None
    )


def test_json_callback_failed_with_reason() -> None:
    notification = JsonGatewayAdapter.parse_callback(payload("json/callback_failed.json"))
    assert (notification.status, notification.reason) == ("failed", "card_expired")


def test_json_callback_reason_may_be_missing() -> None:
    body = b'{"event_id": "e1", "payment_id": "p1", "reference": "r1", "status": "failed"}'
    assert JsonGatewayAdapter.parse_callback(body).reason is None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"",
        b'["evt"]',
        payload("json/callback_wrong_types.json"),
        payload("json/callback_unknown_status.json"),
        b'{"event_id": "e1", "payment_id": "p1", "reference": "", "status": "completed"}',
        b'{"event_id": "e1", "payment_id": "p1", "status": "completed"}',
        json.dumps({"event_id": "e" * 256, "payment_id": "p1", "reference": "r1", "status": "completed"}).encode(),
        b'{"event_id": "e1", "payment_id": 5, "reference": "r1", "status": "completed"}',
        b'{"event_id": "e1", "payment_id": "p1", "reference": "r1", "status": ["completed"]}',
        b'{"event_id": "e1", "payment_id": "p1", "reference": "r1", "status": "completed", "reason": 3}',
        b'{"event_id": "e1", "event_id": "e2", "payment_id": "p1", "reference": "r1", "status": "completed"}',
    ],
    ids=[
        "not-json",
        "empty",
        "array",
        "wrong-types",
        "unknown-status",
        "empty-reference",
        "no-reference",
        "long-event-id",
        "payment-id-number",
        "status-list",
        "reason-number",
        "duplicate-key",
    ],
)
def test_json_callback_malformed(body: bytes) -> None:
    with pytest.raises(CallbackParseError):
        JsonGatewayAdapter.parse_callback(body)


# --- SOAP: create_payment --------------------------------------------------------------------


def test_soap_accepted_and_the_envelope_on_the_wire(gateway: StubGateway, soap_adapter: SoapGatewayAdapter) -> None:
    gateway.answer("POST", "/soap", xml_canned(200, "xml/create_accepted.xml"))

    result = soap_adapter.create_payment(make_request())

    assert (result.outcome, result.payment_id, result.http_status) == (Outcome.ACCEPTED, "PX-20931", 200)
    sent = gateway.last
    assert (sent.method, sent.path) == ("POST", "/soap")
    assert sent.headers["soapaction"] == '"ProcessPayment"'
    assert sent.headers["content-type"] == "text/xml; charset=utf-8"
    assert "authorization" not in sent.headers
    operation = ET.fromstring(sent.body).find(f"{SOAP_ENV}Body/{SANDBOX}ProcessPayment")
    assert operation is not None
    assert {child.tag.removeprefix(SANDBOX): child.text for child in operation} == {
        "ApiKey": API_KEY,
        "Reference": "att_0001",
        "TransactionId": "txn_42",
        "Type": "deposit",
        "Amount": "25.00",
        "Currency": "EUR",
        "Country": "DE",
        "CustomerId": "cust_<7>&'\"",
        "CallbackUrl": "https://paygate.example/callbacks/sandbox?x=1&y=2",
    }


def test_soap_declined(gateway: StubGateway, soap_adapter: SoapGatewayAdapter) -> None:
    gateway.answer("POST", "/soap", xml_canned(200, "xml/create_declined.xml"))
    result = soap_adapter.create_payment(make_request())
    assert (result.outcome, result.reason, result.payment_id, result.error) == (
        Outcome.DECLINED,
        "Card expired",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("canned", "outcome", "error"),
    [
        (xml_canned(500, "xml/fault_server_unavailable.xml"), Outcome.NOT_SUBMITTED, "service_unavailable"),
        (xml_canned(503, "xml/fault_server_unavailable.xml"), Outcome.NOT_SUBMITTED, "service_unavailable"),
        (Canned(500, soap_fault("Server.Unavailable"), "text/xml"), Outcome.NOT_SUBMITTED, "service_unavailable"),
        (Canned(500, soap_fault("env:Server.Unavailable"), "text/xml"), Outcome.NOT_SUBMITTED, "service_unavailable"),
        (xml_canned(500, "xml/fault_server.xml"), Outcome.UNKNOWN, "soap_fault"),
        (Canned(500, soap_fault("soap:Server.Timeout"), "text/xml"), Outcome.UNKNOWN, "soap_fault"),
        (Canned(500, soap_fault("Server.Error"), "text/xml"), Outcome.UNKNOWN, "soap_fault"),
        (
            xml_canned(500, "xml/fault_client_authentication.xml"),
            Outcome.NOT_SUBMITTED,
            "rejected_client_authentication",
        ),
        (
            Canned(500, soap_fault("soap:Client.Validation"), "text/xml"),
            Outcome.NOT_SUBMITTED,
            "rejected_client_validation",
        ),
        (Canned(503, b"<html>Service Unavailable</html>", "text/html"), Outcome.NOT_SUBMITTED, "service_unavailable"),
        (Canned(500, b"Internal Server Error", "text/plain"), Outcome.UNKNOWN, "server_error"),
        (Canned(502, b"", "text/plain"), Outcome.UNKNOWN, "server_error"),
    ],
    ids=[
        "unavailable-500",
        "unavailable-503",
        "unprefixed",
        "other-prefix",
        "server-fault",
        "other-server-fault",
        "server-error-fault",
        "client-auth",
        "client-other",
        "plain-503",
        "plain-500",
        "plain-502",
    ],
)
@SIDES
def test_soap_faults_and_error_statuses(
    gateway: StubGateway, soap_adapter: SoapGatewayAdapter, side: Side, canned: Canned, outcome: Outcome, error: str
) -> None:
    gateway.answer("POST", "/soap", canned)
    result = side.create(soap_adapter)
    assert (result.outcome, result.error, result.http_status) == (outcome, error, canned.status)
    assert result.reason is None


@pytest.mark.parametrize(
    "canned",
    [
        GARBAGE,
        xml_canned(200, "xml/truncated.xml"),
        xml_canned(200, "xml/create_accepted_xxe.xml"),
        xml_canned(200, "xml/not_soap.xml"),
        xml_canned(200, "xml/create_accepted_without_payment_id.xml"),
        xml_canned(200, "xml/lookup_completed.xml"),
        Canned(200, payload("xml/create_accepted.xml").replace(b"Accepted", b"Pending"), "text/xml"),
    ],
    ids=["garbage", "truncated", "dtd-entity", "not-soap", "no-payment-id", "wrong-operation", "unknown-status"],
)
def test_soap_malformed_reply_is_unknown(
    gateway: StubGateway, soap_adapter: SoapGatewayAdapter, canned: Canned
) -> None:
    gateway.answer("POST", "/soap", canned)
    result = soap_adapter.create_payment(make_request())
    assert (result.outcome, result.error) == (Outcome.UNKNOWN, "malformed_reply")


@SIDES
def test_soap_timeout_is_unknown(gateway: StubGateway, soap_adapter: SoapGatewayAdapter, side: Side) -> None:
    gateway.answer("POST", "/soap", Canned(200, payload(side.xml_accepted), "text/xml", hang=True))
    result = side.create(soap_adapter)
    assert (result.outcome, result.error) == (Outcome.UNKNOWN, "timeout")


@SIDES
def test_soap_connection_refused_is_not_submitted(http_client: HttpClient, closed_port: int, side: Side) -> None:
    result = side.create(SoapGatewayAdapter(credentials(f"http://127.0.0.1:{closed_port}"), http_client))
    assert (result.outcome, result.error) == (Outcome.NOT_SUBMITTED, "connection_refused")


# --- SOAP: lookup_payment --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("xml/lookup_accepted.xml", LookupStatus.ACCEPTED),
        ("xml/lookup_completed.xml", LookupStatus.COMPLETED),
        ("xml/lookup_failed.xml", LookupStatus.FAILED),
    ],
)
def test_soap_lookup_found(
    gateway: StubGateway, soap_adapter: SoapGatewayAdapter, name: str, status: LookupStatus
) -> None:
    gateway.answer("POST", "/soap", xml_canned(200, name))
    result = soap_adapter.lookup_payment("att_0001")
    assert (result.status, result.payment_id, result.error) == (status, "PX-20931", None)
    sent = gateway.last
    assert sent.headers["soapaction"] == '"GetPaymentStatus"'
    operation = ET.fromstring(sent.body).find(f"{SOAP_ENV}Body/{SANDBOX}GetPaymentStatus")
    assert operation is not None
    assert {child.tag.removeprefix(SANDBOX): child.text for child in operation} == {
        "ApiKey": API_KEY,
        "Reference": "att_0001",
    }


@SIDES
def test_soap_lookup_not_found(gateway: StubGateway, soap_adapter: SoapGatewayAdapter, side: Side) -> None:
    gateway.answer("POST", "/soap", xml_canned(500, "xml/fault_client_not_found.xml"))
    assert side.lookup(soap_adapter, side.reference).status is side.not_found


@pytest.mark.parametrize(
    ("canned", "error"),
    [
        (xml_canned(500, "xml/fault_server.xml"), "soap_fault"),
        (xml_canned(503, "xml/fault_server_unavailable.xml"), "service_unavailable"),
        (xml_canned(500, "xml/fault_client_authentication.xml"), "rejected_client_authentication"),
        (Canned(500, b"oops", "text/plain"), "server_error"),
        (GARBAGE, "malformed_reply"),
        (xml_canned(200, "xml/create_accepted.xml"), "malformed_reply"),
        (xml_canned(200, "xml/create_accepted_xxe.xml"), "malformed_reply"),
        (Canned(200, payload("xml/lookup_completed.xml"), "text/xml", hang=True), "timeout"),
    ],
    ids=["server-fault", "unavailable", "client-auth", "plain-500", "garbage", "wrong-operation", "dtd", "timeout"],
)
def test_soap_lookup_unavailable(
    gateway: StubGateway, soap_adapter: SoapGatewayAdapter, canned: Canned, error: str
) -> None:
    gateway.answer("POST", "/soap", canned)
    result = soap_adapter.lookup_payment("att_0001")
    assert (result.status, result.error) == (LookupStatus.UNAVAILABLE, error)


# --- SOAP: callbacks -------------------------------------------------------------------------


def test_soap_callback_completed() -> None:
    notification = SoapGatewayAdapter.parse_callback(payload("xml/callback_completed.xml"))
    assert notification == CallbackNotification(
        event_id="EV-5512", reference="att_0001", status="completed", payment_id="PX-20931", reason=None
    )


def test_soap_callback_failed_with_reason() -> None:
    notification = SoapGatewayAdapter.parse_callback(payload("xml/callback_failed.xml"))
    assert (notification.status, notification.reason) == ("failed", "Card expired")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml",
        payload("xml/callback_missing_reference.xml"),
        payload("xml/callback_unknown_status.xml"),
        payload("xml/callback_xxe.xml"),
        payload("xml/callback_billion_laughs.xml"),
        payload("xml/create_accepted.xml"),
        b"<PaymentNotification><EventId>e</EventId><EventId>f</EventId><Reference>r</Reference>"
        b"<Status>Completed</Status></PaymentNotification>",
        b"<PaymentNotification><EventId>e</EventId><Reference><b>r</b></Reference>"
        b"<Status>Completed</Status></PaymentNotification>",
    ],
    ids=[
        "empty",
        "not-xml",
        "missing-reference",
        "unknown-status",
        "xxe",
        "billion-laughs",
        "wrong-root",
        "duplicate-element",
        "nested-markup",
    ],
)
def test_soap_callback_malformed(body: bytes) -> None:
    with pytest.raises(CallbackParseError):
        SoapGatewayAdapter.parse_callback(body)


# --- both: health, registry, the HTTP client -------------------------------------------------


@pytest.mark.parametrize("data_format", ["json", "xml"])
@pytest.mark.parametrize(
    ("status", "health"), [(200, HealthResult.UP), (503, HealthResult.DOWN), (500, HealthResult.DOWN)]
)
def test_health(
    gateway: StubGateway, http_client: HttpClient, data_format: str, status: int, health: HealthResult
) -> None:
    gateway.answer("GET", "/health", Canned(status, b'{"status": "ok"}'))
    result, latency_ms = get_adapter(data_format, credentials(gateway.base_url), http_client).check_health()
    assert result is health
    assert latency_ms > 0
    assert (gateway.last.method, gateway.last.path) == ("GET", "/health")


@pytest.mark.parametrize("data_format", ["json", "xml"])
def test_health_down_when_unreachable_or_slow(
    gateway: StubGateway, http_client: HttpClient, closed_port: int, data_format: str
) -> None:
    refused = get_adapter(data_format, credentials(f"http://127.0.0.1:{closed_port}"), http_client)
    assert refused.check_health()[0] is HealthResult.DOWN
    gateway.answer("GET", "/health", Canned(200, hang=True))
    slow = get_adapter(data_format, credentials(gateway.base_url, read_timeout=READ_TIMEOUT), http_client)
    result, latency_ms = slow.check_health()
    assert result is HealthResult.DOWN
    assert latency_ms >= READ_TIMEOUT * 1000 * 0.9


def test_registry() -> None:
    creds = credentials("http://127.0.0.1:1")
    assert ADAPTERS == {"json": JsonGatewayAdapter, "xml": SoapGatewayAdapter}
    assert isinstance(get_adapter("json", creds), JsonGatewayAdapter)
    assert isinstance(get_adapter("xml", creds), SoapGatewayAdapter)
    assert get_adapter("json", creds).http is gateway_http.default_client()
    with pytest.raises(KeyError):
        get_adapter("csv", creds)
    with pytest.raises(ValueError):
        get_adapter("soap", creds)
    assert "application/json" in JsonGatewayAdapter.callback_content_types
    assert "application/xml" in SoapGatewayAdapter.callback_content_types
    assert all(issubclass(cls, GatewayAdapter) for cls in ADAPTERS.values())


def test_one_log_line_per_call_without_secrets(
    gateway: StubGateway, json_adapter: JsonGatewayAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    gateway.answer("POST", "/payments", json_canned(202, "json/create_accepted.json"))
    with caplog.at_level(logging.INFO, logger="core.http"):
        json_adapter.create_payment(make_request())
    lines = [record.getMessage() for record in caplog.records if record.name == "core.http"]
    assert len(lines) == 1
    assert "sandbox-json" in lines[0] and "POST /payments" in lines[0] and "status=202" in lines[0]
    assert "latency_ms=" in lines[0]
    for secret in (API_KEY, "Bearer", "cust_", "pay_7f3a91c2"):
        assert secret not in caplog.text


def test_failed_call_is_logged_with_its_error(
    http_client: HttpClient, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="core.http"):
        SoapGatewayAdapter(credentials(f"http://127.0.0.1:{closed_port}"), http_client).create_payment(make_request())
    assert "error=connection_refused" in caplog.text
    assert API_KEY not in caplog.text


def test_http_client_typed_errors_and_reply(gateway: StubGateway, http_client: HttpClient, closed_port: int) -> None:
    gateway.answer("GET", "/health", Canned(200, b"ok", "text/plain"))
    timeouts = {"connect_timeout": 0.5, "read_timeout": 0.5}
    reply = http_client.send("GET", gateway.base_url + "/health", **timeouts, peer="g")
    assert (reply.status, reply.body, reply.headers["content-type"]) == (200, b"ok", "text/plain")
    with pytest.raises(core_http.ConnectionRefused) as refused:
        http_client.send("GET", f"http://127.0.0.1:{closed_port}/", **timeouts, peer="g")
    assert (refused.value.code, refused.value.submitted) == ("connection_refused", False)
    assert isinstance(refused.value, core_http.TransportError)
    with pytest.raises(core_http.InvalidRequest):
        http_client.send("GET", "not a url", **timeouts, peer="g")


def test_http_client_refuses_oversized_replies(gateway: StubGateway) -> None:
    gateway.answer("POST", "/payments", Canned(202, b'{"payment_id": "' + b"x" * 500 + b'", "status": "accepted"}'))
    client = gateway_http.gateway_http_client(max_reply_bytes=100)
    try:
        result = JsonGatewayAdapter(credentials(gateway.base_url), client).create_payment(make_request())
    finally:
        client.close()
    assert (result.outcome, result.error) == (Outcome.UNKNOWN, "reply_too_large")


def test_classify_timeouts() -> None:
    connect = classify(requests.ConnectTimeout(), "GET /")
    read = classify(requests.ReadTimeout(), "GET /")
    broken = classify(requests.ConnectionError(), "GET /")
    assert (connect.code, connect.submitted) == ("connect_timeout", False)
    assert (read.code, read.submitted) == ("timeout", True)
    assert (broken.code, broken.submitted) == ("connection_error", True)


def test_default_client_is_shared_and_fork_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    client = gateway_http.default_client()
    assert gateway_http.default_client() is client
    session = client.session
    assert client.session is session
    monkeypatch.setattr(core_http.os, "getpid", lambda: -1)
    assert client.session is not session  # a forked child gets its own pool


# --- refunds: the same outcome rules as payments --------------------------------------------


def test_json_refund_accepted_and_the_request_on_the_wire(
    gateway: StubGateway, json_adapter: JsonGatewayAdapter
) -> None:
    gateway.answer("POST", "/refunds", json_canned(202, "json/refund_accepted.json"))

    result = json_adapter.create_refund(make_refund(amount=Decimal("1E+1")))

    assert (result.outcome, result.refund_id, result.reason, result.error) == (
        Outcome.ACCEPTED,
        "rfd_5c2e81a0",
        None,
        None,
    )
    assert result.http_status == 202
    assert result.latency_ms is not None and result.latency_ms > 0
    sent = gateway.last
    assert (sent.method, sent.path) == ("POST", "/refunds")
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["idempotency-key"] == "rf_0001"
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.body) == {
        "reference": "rf_0001",
        "payment_id": "pay_7f3a91c2",
        "amount": "10",
        "currency": "EUR",
        "callback_url": "https://paygate.example/callbacks/sandbox?x=1&y=2",
    }


def test_json_refund_declined(gateway: StubGateway, json_adapter: JsonGatewayAdapter) -> None:
    gateway.answer("POST", "/refunds", json_canned(200, "json/refund_declined.json"))
    result = json_adapter.create_refund(make_refund())
    assert (result.outcome, result.reason, result.refund_id, result.error) == (
        Outcome.DECLINED,
        "amount_exceeds_payment",
        None,
        None,
    )


@pytest.mark.parametrize(
    "canned",
    [
        GARBAGE,
        Canned(202, b'{"refund_id": "r1", "status": "accepted"'),
        Canned(202, b'[{"refund_id": "r1", "status": "accepted"}]'),
        Canned(202, b'{"status": "accepted"}'),
        json_canned(202, "json/refund_unknown_status.json"),
        json_canned(202, "json/create_accepted.json"),
        Canned(202, b'{"refund_id": 17, "status": "accepted"}'),
        Canned(200, b'{"status": "declined", "reason": 3}'),
        Canned(202, b'{"refund_id": "a", "refund_id": "b", "status": "accepted"}'),
        Canned(202, b'{"refund_id": "r1", "status": "accepted", "amount": NaN}'),
        Canned(202, b'{"refund_id": "r\\u00001", "status": "accepted"}'),
        Canned(202, b'{"refund_id": "r\\udfff", "status": "accepted"}'),
        Canned(202, b'{"refund_id": "' + b"r" * 256 + b'", "status": "accepted"}'),
    ],
    ids=[
        "garbage",
        "truncated",
        "array",
        "no-refund-id",
        "unknown-status",
        "payment-reply",
        "id-not-string",
        "reason-not-string",
        "duplicate-key",
        "nan",
        "nul-in-refund-id",
        "surrogate-in-refund-id",
        "long-refund-id",
    ],
)
def test_json_refund_malformed_reply_is_unknown(
    gateway: StubGateway, json_adapter: JsonGatewayAdapter, canned: Canned
) -> None:
    gateway.answer("POST", "/refunds", canned)
    result = json_adapter.create_refund(make_refund())
    assert (result.outcome, result.error, result.refund_id) == (Outcome.UNKNOWN, "malformed_reply", None)


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("json/refund_lookup_accepted.json", RefundLookupStatus.ACCEPTED),
        ("json/refund_lookup_succeeded.json", RefundLookupStatus.SUCCEEDED),
        ("json/refund_lookup_failed.json", RefundLookupStatus.FAILED),
    ],
)
def test_json_refund_lookup_found(
    gateway: StubGateway, json_adapter: JsonGatewayAdapter, name: str, status: RefundLookupStatus
) -> None:
    gateway.answer("GET", "/refunds/rf%2F0001", json_canned(200, name))
    result = json_adapter.lookup_refund("rf/0001")
    assert (result.status, result.refund_id, result.error) == (status, "rfd_5c2e81a0", None)
    assert result.latency_ms is not None
    assert gateway.last.headers["authorization"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize(
    ("canned", "error"),
    [
        (json_canned(500, "json/error_500.json"), "server_error"),
        (json_canned(503, "json/error_503.json"), "service_unavailable"),
        (json_canned(401, "json/error_401.json"), "rejected_401"),
        (GARBAGE, "malformed_reply"),
        (json_canned(200, "json/lookup_completed.json"), "malformed_reply"),
        (Canned(200, b'{"status": "succeeded"}'), "malformed_reply"),
        (Canned(200, b'{"refund_id": "r\\u0000", "status": "succeeded"}'), "malformed_reply"),
        (Canned(200, payload("json/refund_lookup_succeeded.json"), hang=True), "timeout"),
    ],
    ids=["500", "503", "401", "garbage", "payment-status", "no-refund-id", "nul-in-refund-id", "timeout"],
)
def test_json_refund_lookup_unavailable(
    gateway: StubGateway, json_adapter: JsonGatewayAdapter, canned: Canned, error: str
) -> None:
    gateway.answer("GET", "/refunds/rf_0001", canned)
    result = json_adapter.lookup_refund("rf_0001")
    assert (result.status, result.error) == (RefundLookupStatus.UNAVAILABLE, error)


def test_json_refund_callbacks() -> None:
    succeeded = JsonGatewayAdapter.parse_callback(payload("json/refund_callback_succeeded.json"))
    assert succeeded == RefundNotification(
        event_id="evt_01HZY1", refund_id="rfd_5c2e81a0", reference="rf_0001", status="succeeded", reason=None
    )
    failed = JsonGatewayAdapter.parse_callback(payload("json/refund_callback_failed.json"))
    assert isinstance(failed, RefundNotification)
    assert (failed.status, failed.reason) == ("failed", "rejected_by_bank")
    # A payment's callback is still a CallbackNotification, whatever else it carries.
    payment = JsonGatewayAdapter.parse_callback(payload("json/callback_completed.json"))
    assert type(payment) is CallbackNotification
    tagged = b'{"event_id": "e1", "type": "payment", "payment_id": "p1", "reference": "r1", "status": "completed"}'
    assert type(JsonGatewayAdapter.parse_callback(tagged)) is CallbackNotification


@pytest.mark.parametrize(
    "body",
    [
        payload("json/refund_callback_payment_status.json"),
        b'{"event_id": "e1", "type": "refund", "refund_id": "r1", "reference": "rf1"}',
        b'{"event_id": "e1", "type": "refund", "reference": "rf1", "status": "succeeded"}',
        b'{"event_id": "e1", "type": "refund", "refund_id": 7, "reference": "rf1", "status": "succeeded"}',
        b'{"event_id": "", "type": "refund", "refund_id": "r1", "reference": "rf1", "status": "succeeded"}',
        b'{"event_id": "e1", "type": "refund", "refund_id": "r1", "status": "failed"}',
        b'{"event_id": "e1", "type": "refund", "refund_id": "r1", "reference": "rf1", "status": "failed", "reason": 1}',
        b'{"event_id": "e1", "type": "refund", "type": "refund", "refund_id": "r1", "reference": "rf1",'
        b' "status": "succeeded"}',
        # A refund's callback without its "type" is read as a payment's, and is no valid one.
        b'{"event_id": "e1", "refund_id": "r1", "reference": "rf1", "status": "succeeded"}',
    ],
    ids=[
        "payment-status",
        "no-status",
        "no-refund-id",
        "refund-id-number",
        "empty-event-id",
        "no-reference",
        "reason-number",
        "duplicate-key",
        "no-type",
    ],
)
def test_json_refund_callback_malformed(body: bytes) -> None:
    with pytest.raises(CallbackParseError):
        JsonGatewayAdapter.parse_callback(body)


def test_soap_refund_accepted_and_the_envelope_on_the_wire(
    gateway: StubGateway, soap_adapter: SoapGatewayAdapter
) -> None:
    gateway.answer("POST", "/soap", xml_canned(200, "xml/refund_accepted.xml"))

    result = soap_adapter.create_refund(make_refund(payment_id="PX-<20931>&"))

    assert (result.outcome, result.refund_id, result.http_status) == (Outcome.ACCEPTED, "RX-7731", 200)
    sent = gateway.last
    assert (sent.method, sent.path) == ("POST", "/soap")
    assert sent.headers["soapaction"] == '"ProcessRefund"'
    assert sent.headers["content-type"] == "text/xml; charset=utf-8"
    assert "authorization" not in sent.headers
    operation = ET.fromstring(sent.body).find(f"{SOAP_ENV}Body/{SANDBOX}ProcessRefund")
    assert operation is not None
    assert [(child.tag.removeprefix(SANDBOX), child.text) for child in operation] == [
        ("ApiKey", API_KEY),
        ("Reference", "rf_0001"),
        ("PaymentId", "PX-<20931>&"),
        ("Amount", "10.00"),
        ("Currency", "EUR"),
        ("CallbackUrl", "https://paygate.example/callbacks/sandbox?x=1&y=2"),
    ]


def test_soap_refund_declined(gateway: StubGateway, soap_adapter: SoapGatewayAdapter) -> None:
    gateway.answer("POST", "/soap", xml_canned(200, "xml/refund_declined.xml"))
    result = soap_adapter.create_refund(make_refund())
    assert (result.outcome, result.reason, result.refund_id, result.error) == (
        Outcome.DECLINED,
        "Refund exceeds the payment",
        None,
        None,
    )


@pytest.mark.parametrize(
    "canned",
    [
        GARBAGE,
        xml_canned(200, "xml/truncated.xml"),
        xml_canned(200, "xml/create_accepted_xxe.xml"),
        xml_canned(200, "xml/refund_accepted_without_refund_id.xml"),
        xml_canned(200, "xml/create_accepted.xml"),
        xml_canned(200, "xml/refund_lookup_succeeded.xml"),
        Canned(200, payload("xml/refund_accepted.xml").replace(b"Accepted", b"Pending"), "text/xml"),
        Canned(200, payload("xml/refund_accepted.xml").replace(b"RX-7731", b"R" * 256), "text/xml"),
    ],
    ids=[
        "garbage",
        "truncated",
        "dtd-entity",
        "no-refund-id",
        "payment-reply",
        "wrong-operation",
        "unknown-status",
        "long-refund-id",
    ],
)
def test_soap_refund_malformed_reply_is_unknown(
    gateway: StubGateway, soap_adapter: SoapGatewayAdapter, canned: Canned
) -> None:
    gateway.answer("POST", "/soap", canned)
    result = soap_adapter.create_refund(make_refund())
    assert (result.outcome, result.error) == (Outcome.UNKNOWN, "malformed_reply")


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("xml/refund_lookup_accepted.xml", RefundLookupStatus.ACCEPTED),
        ("xml/refund_lookup_succeeded.xml", RefundLookupStatus.SUCCEEDED),
        ("xml/refund_lookup_failed.xml", RefundLookupStatus.FAILED),
    ],
)
def test_soap_refund_lookup_found(
    gateway: StubGateway, soap_adapter: SoapGatewayAdapter, name: str, status: RefundLookupStatus
) -> None:
    gateway.answer("POST", "/soap", xml_canned(200, name))
    result = soap_adapter.lookup_refund("rf_0001")
    assert (result.status, result.refund_id, result.error) == (status, "RX-7731", None)
    sent = gateway.last
    assert sent.headers["soapaction"] == '"GetRefundStatus"'
    operation = ET.fromstring(sent.body).find(f"{SOAP_ENV}Body/{SANDBOX}GetRefundStatus")
    assert operation is not None
    assert {child.tag.removeprefix(SANDBOX): child.text for child in operation} == {
        "ApiKey": API_KEY,
        "Reference": "rf_0001",
    }


@pytest.mark.parametrize(
    ("canned", "error"),
    [
        (xml_canned(500, "xml/fault_server.xml"), "soap_fault"),
        (xml_canned(503, "xml/fault_server_unavailable.xml"), "service_unavailable"),
        (xml_canned(500, "xml/fault_client_authentication.xml"), "rejected_client_authentication"),
        (Canned(500, b"oops", "text/plain"), "server_error"),
        (GARBAGE, "malformed_reply"),
        (xml_canned(200, "xml/lookup_completed.xml"), "malformed_reply"),
        (xml_canned(200, "xml/refund_accepted.xml"), "malformed_reply"),
        (Canned(200, payload("xml/refund_lookup_succeeded.xml"), "text/xml", hang=True), "timeout"),
    ],
    ids=[
        "server-fault",
        "unavailable",
        "client-auth",
        "plain-500",
        "garbage",
        "payment-status",
        "wrong-operation",
        "timeout",
    ],
)
def test_soap_refund_lookup_unavailable(
    gateway: StubGateway, soap_adapter: SoapGatewayAdapter, canned: Canned, error: str
) -> None:
    gateway.answer("POST", "/soap", canned)
    result = soap_adapter.lookup_refund("rf_0001")
    assert (result.status, result.error) == (RefundLookupStatus.UNAVAILABLE, error)


def test_soap_refund_callbacks() -> None:
    succeeded = SoapGatewayAdapter.parse_callback(payload("xml/refund_callback_succeeded.xml"))
    assert succeeded == RefundNotification(
        event_id="EV-6610", refund_id="RX-7731", reference="rf_0001", status="succeeded", reason=None
    )
    failed = SoapGatewayAdapter.parse_callback(payload("xml/refund_callback_failed.xml"))
    assert isinstance(failed, RefundNotification)
    assert (failed.status, failed.reason) == ("failed", "Account closed")
    namespaced = payload("xml/refund_callback_succeeded.xml").replace(
        b"<RefundNotification>", f'<RefundNotification xmlns="{SANDBOX_NS}">'.encode()
    )
    assert SoapGatewayAdapter.parse_callback(namespaced) == succeeded
    assert type(SoapGatewayAdapter.parse_callback(payload("xml/callback_completed.xml"))) is CallbackNotification


@pytest.mark.parametrize(
    "body",
    [
        payload("xml/refund_callback_payment_status.xml"),
        payload("xml/refund_callback_xxe.xml"),
        b"<RefundNotification><EventId>e</EventId><RefundId>r</RefundId><Status>Succeeded</Status>"
        b"</RefundNotification>",
        b"<RefundNotification><EventId>e</EventId><Reference>rf</Reference><Reference>rf</Reference>"
        b"<Status>Succeeded</Status></RefundNotification>",
        b"<RefundNotification><Reference>rf</Reference><Status>Failed</Status></RefundNotification>",
        b"<RefundNotification><EventId>e</EventId><RefundId>" + b"r" * 256 + b"</RefundId>"
        b"<Reference>rf</Reference><Status>Succeeded</Status></RefundNotification>",
        # A payment's notification with a refund's status is no valid payment notification.
        payload("xml/refund_callback_succeeded.xml").replace(b"RefundNotification", b"PaymentNotification"),
    ],
    ids=[
        "payment-status",
        "xxe",
        "missing-reference",
        "duplicate-element",
        "missing-event-id",
        "long-refund-id",
        "payment-root",
    ],
)
def test_soap_refund_callback_malformed(body: bytes) -> None:
    with pytest.raises(CallbackParseError):
        SoapGatewayAdapter.parse_callback(body)


def test_refund_calls_are_logged_without_secrets(
    gateway: StubGateway, json_adapter: JsonGatewayAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    gateway.answer("POST", "/refunds", json_canned(202, "json/refund_accepted.json"))
    with caplog.at_level(logging.INFO, logger="core.http"):
        json_adapter.create_refund(make_refund())
    lines = [record.getMessage() for record in caplog.records if record.name == "core.http"]
    assert len(lines) == 1
    assert "sandbox-json POST /refunds status=202" in lines[0]
    for secret in (API_KEY, "Bearer", "pay_7f3a91c2", "rfd_5c2e81a0"):
        assert secret not in caplog.text
