"""The refund adapters against the real sandbox gateways, over HTTP on loopback.

Each wire format's adapter pays, refunds and looks up at its sandbox process, and parses
the refund callback the sandbox actually sends; then the sandbox's failure modes are
checked to reach the outcomes the failover rules expect. No database.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from gateways.adapters import GatewayAdapter, get_adapter
from gateways.demo import DEMO_GATEWAYS
from gateways.types import (
    GatewayCredentials,
    LookupStatus,
    Outcome,
    PaymentRequest,
    RefundLookupStatus,
    RefundNotification,
    RefundRequest,
)
from testing.stack import Sandbox, wait_for

pytestmark = pytest.mark.integration

# One gateway per wire format.
CODES = {"json": "acmepay", "xml": "soapbank"}
READ_TIMEOUT = 1.0  # the sandboxes' `timeout` mode answers after 4 s


class CallbackInbox:
    """Collects the callback bodies posted to it, by path, and answers 200."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[bytes]] = {}
        self._lock = threading.Lock()
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with inbox._lock:
                    inbox.bodies.setdefault(self.path, []).append(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def received(self, path: str) -> list[bytes]:
        with self._lock:
            return list(self.bodies.get(path, []))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def inbox() -> Iterator[CallbackInbox]:
    server = CallbackInbox()
    yield server
    server.close()


@pytest.fixture(params=sorted(CODES))
def sandbox(request: pytest.FixtureRequest, sandboxes: dict[str, Sandbox]) -> Iterator[Sandbox]:
    box = sandboxes[CODES[request.param]]
    box.reset()
    yield box
    box.reset()


def adapter_for(box: Sandbox) -> GatewayAdapter:
    [demo] = [demo for demo in DEMO_GATEWAYS if demo.code == box.code]
    credentials = GatewayCredentials(
        code=box.code, base_url=box.base_url, api_key=demo.api_key, connect_timeout=1.0, read_timeout=READ_TIMEOUT
    )
    return get_adapter(box.data_format, credentials)


def completed_payment(adapter: GatewayAdapter, inbox: CallbackInbox, amount: str = "50.00") -> str:
    """A payment the sandbox has completed; its payment id."""
    reference = str(uuid.uuid4())
    request = PaymentRequest(
        reference=reference,
        transaction_id=str(uuid.uuid4()),
        type="deposit",
        amount=Decimal(amount),
        currency="EUR",
        country="DE",
        customer_id="cust_42",
        callback_url=inbox.url("/payments"),
    )
    result = adapter.create_payment(request)
    assert result.outcome is Outcome.ACCEPTED and result.payment_id
    wait_for(
        lambda: adapter.lookup_payment(reference).status is LookupStatus.COMPLETED,
        timeout=10,
        message="the payment to complete",
    )
    return result.payment_id


def refund_request(inbox: CallbackInbox, payment_id: str, amount: str, path: str) -> RefundRequest:
    return RefundRequest(
        reference=str(uuid.uuid4()),
        payment_id=payment_id,
        amount=Decimal(amount),
        currency="EUR",
        callback_url=inbox.url(path),
    )


def test_refund_accepted_called_back_looked_up_and_never_counted_twice(sandbox: Sandbox, inbox: CallbackInbox) -> None:
    adapter = adapter_for(sandbox)
    payment_id = completed_payment(adapter, inbox, amount="50.00")
    path = f"/refunds/{uuid.uuid4().hex}"
    request = refund_request(inbox, payment_id, "30.00", path)
    assert adapter.lookup_refund(request.reference).status is RefundLookupStatus.NOT_FOUND

    result = adapter.create_refund(request)
    assert (result.outcome, result.error, result.reason) == (Outcome.ACCEPTED, None, None)
    assert result.refund_id and result.latency_ms is not None

    [body] = wait_for(lambda: inbox.received(path), timeout=10, message="the refund callback")
    notification = adapter.parse_callback(body)
    assert isinstance(notification, RefundNotification)
    assert (notification.refund_id, notification.reference, notification.status, notification.reason) == (
        result.refund_id,
        request.reference,
        "succeeded",
        None,
    )
    looked_up = adapter.lookup_refund(request.reference)
    assert (looked_up.status, looked_up.refund_id) == (RefundLookupStatus.SUCCEEDED, result.refund_id)

    # A resend is answered as the first time and takes nothing more from the payment.
    repeat = adapter.create_refund(request)
    assert (repeat.outcome, repeat.refund_id) == (Outcome.ACCEPTED, result.refund_id)
    rest = adapter.create_refund(refund_request(inbox, payment_id, "20.00", path))
    assert rest.outcome is Outcome.ACCEPTED
    over = adapter.create_refund(refund_request(inbox, payment_id, "0.01", path))
    assert (over.outcome, over.reason) == (Outcome.DECLINED, "amount_exceeds_payment")
    [listed] = [refund for refund in sandbox_refunds(sandbox) if refund["reference"] == request.reference]
    assert (listed["requests"], listed["amount"], listed["payment_id"]) == (2, "30.00", payment_id)


def sandbox_refunds(box: Sandbox) -> list[dict[str, Any]]:
    return list(requests.get(f"{box.base_url}/_sandbox/payments", timeout=5).json()["refunds"])


def test_refund_failed_by_its_callback(sandbox: Sandbox, inbox: CallbackInbox) -> None:
    adapter = adapter_for(sandbox)
    payment_id = completed_payment(adapter, inbox)
    sandbox.mode("ok", callback="failed")
    path = f"/refunds/{uuid.uuid4().hex}"
    request = refund_request(inbox, payment_id, "50.00", path)
    assert adapter.create_refund(request).outcome is Outcome.ACCEPTED
    [body] = wait_for(lambda: inbox.received(path), timeout=10, message="the refund callback")
    notification = adapter.parse_callback(body)
    assert isinstance(notification, RefundNotification)
    assert (notification.status, notification.reason) == ("failed", "rejected_by_bank")
    assert adapter.lookup_refund(request.reference).status is RefundLookupStatus.FAILED


@pytest.mark.parametrize(
    ("mode", "options", "outcome", "error"),
    [
        ("down", {}, Outcome.NOT_SUBMITTED, "service_unavailable"),
        ("flaky", {"failure_rate": 1.0}, Outcome.NOT_SUBMITTED, "service_unavailable"),
        ("error", {}, Outcome.UNKNOWN, None),  # a 500 (JSON) or a Server.Error fault (SOAP)
        ("timeout", {}, Outcome.UNKNOWN, "timeout"),
        ("decline", {}, Outcome.DECLINED, None),
        ("ok", {"decline_rate": 1.0}, Outcome.DECLINED, None),
    ],
    ids=["down", "flaky", "error", "timeout", "decline", "decline-rate"],
)
def test_sandbox_modes_reach_the_payment_outcomes(
    sandbox: Sandbox, inbox: CallbackInbox, mode: str, options: dict[str, Any], outcome: Outcome, error: str | None
) -> None:
    adapter = adapter_for(sandbox)
    payment_id = completed_payment(adapter, inbox)
    sandbox.mode(mode, callback="none", **options)
    request = refund_request(inbox, payment_id, "10.00", "/refunds/modes")
    result = adapter.create_refund(request)
    assert result.outcome is outcome
    if error is not None:
        assert result.error == error
    if outcome is Outcome.DECLINED:
        assert result.reason == "refund_rejected"
    looked_up = adapter.lookup_refund(request.reference)
    if mode == "down":
        assert (looked_up.status, looked_up.error) == (RefundLookupStatus.UNAVAILABLE, "service_unavailable")
    elif mode in ("flaky", "error"):
        assert looked_up.status is RefundLookupStatus.NOT_FOUND  # never received: safe to send again
    elif mode == "timeout":
        assert looked_up.status is RefundLookupStatus.ACCEPTED  # received: follow what the gateway says
    else:
        assert looked_up.status is RefundLookupStatus.FAILED
