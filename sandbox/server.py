"""The sandbox over HTTP: one threaded server, both wire protocols, the control endpoints.

- JSON: `POST /payments` and `POST /refunds` (Bearer API key), `GET /payments/{reference}`,
  `GET /refunds/{reference}`.
- XML: `POST /soap` (SOAP 1.1: `ProcessPayment`, `GetPaymentStatus`, `ProcessRefund`,
  `GetRefundStatus`), `GET /soap?wsdl`.
- Both: `GET /health`; `/_sandbox/mode`, `/_sandbox/payments`, `/_sandbox/reset`,
  `POST /_sandbox/payments/<payment_id>/pay`, which work in every mode and never wait
  `latency_ms`; the customer's challenge page `/challenge/<payment_id>` (CONTRACT §11).

The handler turns requests into calls on `SandboxGateway` and its answers into bytes;
`SandboxServer` runs it from a thread, `run_forever` until SIGTERM or SIGINT.
"""

from __future__ import annotations

import hmac
import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, unquote

from .challenge import challenge_page, done_page
from .config import SandboxConfig
from .gateway import BadRequest, ModeSettings, PaymentFields, RefundFields, SandboxGateway
from .methods import details_from_json, details_from_soap
from .soap import (
    SOAP_PAYMENT_FIELDS,
    SOAP_REFUND_FIELDS,
    SOAP_REFUND_STATUS,
    SOAP_STATUS,
    SoapFault,
    action_elements,
    parse_soap_request,
    render_wsdl,
    soap_action,
    soap_fault,
    soap_response,
)
from .store import Payment, Refund

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024

# Wire field name -> payment field name.
JSON_PAYMENT_FIELDS = {
    "reference": "reference",
    "transaction_id": "transaction_id",
    "type": "type",
    "amount": "amount",
    "currency": "currency",
    "country": "country",
    "customer_id": "customer_id",
    "callback_url": "callback_url",
}
JSON_REFUND_FIELDS = {
    "reference": "reference",
    "payment_id": "payment_id",
    "amount": "amount",
    "currency": "currency",
    "callback_url": "callback_url",
}
SOAP_OPERATIONS = ("ProcessPayment", "GetPaymentStatus", "ProcessRefund", "GetRefundStatus")


def _return_url(value: object) -> str | None:
    """The optional return_url of a payment request: an absolute http(s) URL."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 4000 or not value.startswith(("http://", "https://")):
        raise BadRequest("return_url must be an absolute http(s) URL")
    return value


def _secret_matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    note: str = ""  # appended to the request's log line
    headers: dict[str, str] | None = None

    @classmethod
    def html(cls, status: int, body: str, note: str = "") -> Response:
        return cls(status, body.encode(), "text/html; charset=utf-8", note=note)

    @classmethod
    def see_other(cls, location: str, note: str = "") -> Response:
        return cls(HTTPStatus.SEE_OTHER, b"", "text/plain", note=note, headers={"Location": location})

    @classmethod
    def json(cls, status: int, data: Any, note: str = "") -> Response:
        return cls(status, json.dumps(data).encode(), "application/json", note=note)

    @classmethod
    def xml(cls, status: int, body: bytes, note: str = "") -> Response:
        return cls(status, body, "text/xml; charset=utf-8", note=note)

    @classmethod
    def fault(cls, fault: SoapFault, note: str = "") -> Response:
        return cls.xml(fault.http_status, soap_fault(fault.code, fault.message), note=note or f"fault {fault.code}")


def _json_error(status: int, error: str, message: str) -> Response:
    return Response.json(status, {"error": error, "message": message}, note=error)


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], gateway: SandboxGateway) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, SandboxRequestHandler)
        self.gateway = gateway


class SandboxRequestHandler(BaseHTTPRequestHandler):
    server: SandboxHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive, as a real gateway would allow
    server_version = "PaygateSandbox/1.0"
    # The headers and the body go out in two writes: with Nagle's algorithm the body would
    # wait for the client's delayed ACK of the headers (up to 40 ms on Linux).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    @property
    def gateway(self) -> SandboxGateway:
        return self.server.gateway

    # Plumbing

    def _handle(self) -> None:
        started = time.monotonic()
        path, _, query = self.path.partition("?")
        try:
            body = self._read_body()
            if body is None:
                response = _json_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too_large", "request body too large")
            else:
                response = self._route(path, query, body)
        except BadRequest as exc:
            response = _json_error(HTTPStatus.BAD_REQUEST, "bad_request", str(exc))
        except Exception:
            logger.exception("sandbox %s: %s %s failed", self.gateway.config.code, self.command, path)
            response = _json_error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "unexpected sandbox error")
        try:
            self._send(response)
        except OSError as exc:  # e.g. the client gave up during a `timeout` mode delay
            response.note = f"{response.note} (client gone: {type(exc).__name__})".strip()
            self.close_connection = True
        elapsed_ms = (time.monotonic() - started) * 1000
        note = f" {response.note}" if response.note else ""
        logger.info(
            "sandbox %s: %s %s -> %d %.0fms%s",
            self.gateway.config.code,
            self.command,
            self.path,
            response.status,
            elapsed_ms,
            note,
        )

    def _read_body(self) -> bytes | None:
        """The request body (always read in full, so keep-alive stays in sync); None if too large."""
        raw_length = self.headers.get("Content-Length")
        if not raw_length:
            return b""
        try:
            length = int(raw_length)
        except ValueError:
            self.close_connection = True
            raise BadRequest("invalid Content-Length") from None
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            return None
        return self.rfile.read(length)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in (response.headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(response.body)
        self.wfile.flush()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # `_handle` logs one line per request, with more context

    def log_message(self, format: str, *args: Any) -> None:
        logger.warning("sandbox %s: %s", self.gateway.config.code, format % args)

    # Routing

    def _route(self, path: str, query: str, body: bytes) -> Response:
        method = self.command
        if path.startswith("/_sandbox/"):
            return self._control(method, path, body)
        if path.startswith("/challenge/"):
            return self._challenge(method, path.removeprefix("/challenge/"), body)
        config = self.gateway.config
        # One reading of the settings per request: a change while it waits applies to the next one.
        mode = self.gateway.mode
        if mode.latency_ms:
            # Only this request's thread waits (one thread per connection): others are served meanwhile.
            self.gateway.stopping.wait(mode.latency_ms / 1000)
        if mode.mode == "down":
            if config.format == "xml" and path == "/soap":
                down = SoapFault("Server.Unavailable", "Gateway is down", HTTPStatus.SERVICE_UNAVAILABLE)
                return Response.fault(down)
            return _json_error(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "gateway is down")
        if path == "/health" and method == "GET":
            return Response.json(HTTPStatus.OK, {"status": "ok"})
        if config.format == "json":
            if path == "/payments" and method == "POST":
                return self._json_payment(body, mode)
            if path.startswith("/payments/") and method == "GET":
                return self._json_lookup(path.removeprefix("/payments/"))
            if path == "/refunds" and method == "POST":
                return self._json_refund(body, mode)
            if path.startswith("/refunds/") and method == "GET":
                return self._json_refund_lookup(path.removeprefix("/refunds/"))
        elif path == "/soap":
            if method == "GET" and "wsdl" in {key.lower() for key in parse_qs(query, keep_blank_values=True)}:
                return self._wsdl()
            if method == "POST":
                return self._soap(body, mode)
        return _json_error(HTTPStatus.NOT_FOUND, "not_found", f"no route for {method} {path}")

    # JSON protocol

    def _bearer(self) -> str | None:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    @staticmethod
    def _json_object(body: bytes) -> dict[str, Any]:
        try:
            data = json.loads(body)
        except ValueError:
            raise BadRequest("body must be a JSON object") from None
        if not isinstance(data, dict):
            raise BadRequest("body must be a JSON object")
        return data

    def _json_refused(self, mode: ModeSettings) -> Response | None:
        """The answer of the `error` and `flaky` modes to a payment or refund request, if they refuse it."""
        if mode.mode == "error":
            return _json_error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "sandbox error mode")
        if self.gateway.flaky_fails(mode):
            return _json_error(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "sandbox flaky mode")
        return None

    def _json_payment(self, body: bytes, mode: ModeSettings) -> Response:
        if not _secret_matches(self._bearer(), self.gateway.config.api_key):
            return _json_error(HTTPStatus.UNAUTHORIZED, "unauthorized", "invalid or missing API key")
        raw = self._json_object(body)
        fields = PaymentFields.parse(raw, JSON_PAYMENT_FIELDS).with_method(
            raw.get("payment_method"), details_from_json(raw.get("payment_details"))
        )
        return_url = _return_url(raw.get("return_url"))
        refused = self._json_refused(mode)
        if refused is not None:
            return refused
        payment, created = self.gateway.submit(fields, mode, return_url=return_url, base_url=self._base_url())
        self._timeout_delay(mode)
        note = f"ref={payment.reference} {payment.status}" + ("" if created else f" repeat#{payment.requests}")
        if payment.status == "declined":
            return Response.json(HTTPStatus.OK, {"status": "declined", "reason": payment.reason}, note=note)
        if payment.action is not None:
            waiting = {"payment_id": payment.payment_id, "status": "action_required", "action": payment.action}
            return Response.json(HTTPStatus.ACCEPTED, waiting, note=note)
        accepted = {"payment_id": payment.payment_id, "status": "accepted"}
        return Response.json(HTTPStatus.ACCEPTED, accepted, note=note)

    def _lookup_key_refused(self) -> Response | None:
        # The contract only requires the key on POST; a look-up that sends a wrong one is refused.
        if self.headers.get("Authorization") is not None and not _secret_matches(
            self._bearer(), self.gateway.config.api_key
        ):
            return _json_error(HTTPStatus.UNAUTHORIZED, "unauthorized", "invalid API key")
        return None

    def _json_lookup(self, raw_reference: str) -> Response:
        refused = self._lookup_key_refused()
        if refused is not None:
            return refused
        reference = unquote(raw_reference)
        payment = self.gateway.lookup(reference) if reference and "/" not in raw_reference else None
        if payment is None:
            return _json_error(HTTPStatus.NOT_FOUND, "not_found", "no payment with this reference")
        data: dict[str, Any] = {
            "payment_id": payment.payment_id,
            "reference": payment.reference,
            "status": payment.lookup_status,
            "reason": payment.reason,
        }
        if payment.status == "action_required" and payment.action is not None:
            data["action"] = payment.action
        return Response.json(HTTPStatus.OK, data, note=f"ref={reference} {payment.lookup_status}")

    def _json_refund(self, body: bytes, mode: ModeSettings) -> Response:
        if not _secret_matches(self._bearer(), self.gateway.config.api_key):
            return _json_error(HTTPStatus.UNAUTHORIZED, "unauthorized", "invalid or missing API key")
        fields = RefundFields.parse(self._json_object(body), JSON_REFUND_FIELDS)
        refused = self._json_refused(mode)
        if refused is not None:
            return refused
        refund, created = self.gateway.submit_refund(fields, mode)
        self._timeout_delay(mode)
        note = f"refund ref={refund.reference} {refund.status}" + ("" if created else f" repeat#{refund.requests}")
        if refund.status == "declined":
            return Response.json(HTTPStatus.OK, {"status": "declined", "reason": refund.reason}, note=note)
        return Response.json(HTTPStatus.ACCEPTED, {"refund_id": refund.refund_id, "status": "accepted"}, note=note)

    def _json_refund_lookup(self, raw_reference: str) -> Response:
        refused = self._lookup_key_refused()
        if refused is not None:
            return refused
        reference = unquote(raw_reference)
        refund = self.gateway.lookup_refund(reference) if reference and "/" not in raw_reference else None
        if refund is None:
            return _json_error(HTTPStatus.NOT_FOUND, "not_found", "no refund with this reference")
        data = {
            "refund_id": refund.refund_id,
            "reference": refund.reference,
            "status": refund.lookup_status,
            "reason": refund.reason,
        }
        return Response.json(HTTPStatus.OK, data, note=f"refund ref={reference} {refund.lookup_status}")

    def _timeout_delay(self, mode: ModeSettings) -> None:
        if mode.mode == "timeout":
            self.gateway.stopping.wait(self.gateway.config.timeout_delay)

    # SOAP protocol

    def _wsdl(self) -> Response:
        config = self.gateway.config
        host = self.headers.get("Host") or f"{config.host}:{self.server.server_address[1]}"
        return Response.xml(HTTPStatus.OK, render_wsdl(f"http://{host}/soap").encode())

    def _soap(self, body: bytes, mode: ModeSettings) -> Response:
        try:
            operation, params = parse_soap_request(body)
            action = soap_action(self.headers.get("SOAPAction"))
            if action and action != operation:
                raise SoapFault("Client.BadRequest", f"SOAPAction {action!r} does not match the body ({operation})")
            if operation not in SOAP_OPERATIONS:
                raise SoapFault("Client.BadRequest", f"Unknown operation {operation}")
            if not _secret_matches(params.get("ApiKey"), self.gateway.config.api_key):
                raise SoapFault("Client.Authentication", "Invalid API key")
            if operation == "GetPaymentStatus":
                return self._soap_lookup(params)
            if operation == "ProcessRefund":
                return self._soap_refund(params, mode)
            if operation == "GetRefundStatus":
                return self._soap_refund_lookup(params)
            return self._soap_payment(params, mode)
        except SoapFault as fault:
            return Response.fault(fault)

    def _soap_payment(self, params: dict[str, str], mode: ModeSettings) -> Response:
        try:
            fields = PaymentFields.parse(params, SOAP_PAYMENT_FIELDS).with_method(
                params.get("PaymentMethod"), details_from_soap(params)
            )
        except BadRequest as exc:
            raise SoapFault("Client.BadRequest", str(exc)) from None
        try:
            return_url = _return_url(params.get("ReturnUrl") or None)
        except BadRequest as exc:
            raise SoapFault("Client.BadRequest", str(exc)) from None
        self._soap_refuse(mode)
        payment, created = self.gateway.submit(fields, mode, return_url=return_url, base_url=self._base_url())
        self._timeout_delay(mode)
        note = f"ProcessPayment ref={payment.reference} {payment.status}"
        note += "" if created else f" repeat#{payment.requests}"
        extra = ""
        if payment.status == "declined":
            values = [("PaymentId", ""), ("Status", "Declined"), ("Reason", payment.reason or "")]
        elif payment.action is not None:
            values = [("PaymentId", payment.payment_id), ("Status", "ActionRequired"), ("Reason", "")]
            extra = action_elements(payment.action)
        else:
            values = [("PaymentId", payment.payment_id), ("Status", "Accepted"), ("Reason", "")]
        return Response.xml(HTTPStatus.OK, soap_response("ProcessPayment", values, extra_xml=extra), note=note)

    def _soap_refuse(self, mode: ModeSettings) -> None:
        """Raise the fault of the `error` and `flaky` modes for a payment or refund request, if they refuse it."""
        if mode.mode == "error":
            raise SoapFault("Server.Error", "Internal gateway error")
        if self.gateway.flaky_fails(mode):
            raise SoapFault("Server.Unavailable", "Gateway temporarily unavailable")

    def _soap_refund(self, params: dict[str, str], mode: ModeSettings) -> Response:
        try:
            fields = RefundFields.parse(params, SOAP_REFUND_FIELDS)
        except BadRequest as exc:
            raise SoapFault("Client.BadRequest", str(exc)) from None
        self._soap_refuse(mode)
        refund, created = self.gateway.submit_refund(fields, mode)
        self._timeout_delay(mode)
        note = f"ProcessRefund ref={refund.reference} {refund.status}"
        note += "" if created else f" repeat#{refund.requests}"
        if refund.status == "declined":
            values = [("RefundId", ""), ("Status", "Declined"), ("Reason", refund.reason or "")]
        else:
            values = [("RefundId", refund.refund_id), ("Status", "Accepted"), ("Reason", "")]
        return Response.xml(HTTPStatus.OK, soap_response("ProcessRefund", values), note=note)

    def _soap_refund_lookup(self, params: dict[str, str]) -> Response:
        reference = params.get("Reference", "")
        refund = self.gateway.lookup_refund(reference) if reference else None
        if refund is None:
            raise SoapFault("Client.NotFound", "No refund with this reference")
        values = [("RefundId", refund.refund_id), ("Status", SOAP_REFUND_STATUS[refund.status])]
        note = f"GetRefundStatus ref={reference} {refund.lookup_status}"
        return Response.xml(HTTPStatus.OK, soap_response("GetRefundStatus", values), note=note)

    def _soap_lookup(self, params: dict[str, str]) -> Response:
        reference = params.get("Reference", "")
        payment = self.gateway.lookup(reference) if reference else None
        if payment is None:
            raise SoapFault("Client.NotFound", "No payment with this reference")
        values = [("PaymentId", payment.payment_id), ("Status", SOAP_STATUS[payment.status])]
        extra = ""
        if payment.status == "failed" and payment.action is not None and payment.reason:
            # Why the customer's action failed (declined, cancelled): §11's addition.
            values.append(("Reason", payment.reason))
        if payment.status == "action_required" and payment.action is not None:
            extra = action_elements(payment.action)
        note = f"GetPaymentStatus ref={reference} {payment.lookup_status}"
        return Response.xml(HTTPStatus.OK, soap_response("GetPaymentStatus", values, extra_xml=extra), note=note)

    # The customer's side (CONTRACT §11)

    def _base_url(self) -> str:
        """This gateway's address as its client reached it: where the challenge pages are."""
        config = self.gateway.config
        host = self.headers.get("Host") or f"{config.host}:{self.server.server_address[1]}"
        return f"http://{host}"

    def _challenge(self, method: str, rest: str, body: bytes) -> Response:
        payment_id, _, decision = unquote(rest).partition("/")
        payment = self.gateway.payment_by_id(payment_id)
        if payment is None or payment.action is None or payment.action.get("type") != "redirect":
            return Response.html(HTTPStatus.NOT_FOUND, done_page("Unknown payment."), note="challenge unknown")
        if decision:
            if decision != "decide" or method != "POST":
                return Response.html(HTTPStatus.METHOD_NOT_ALLOWED, done_page("Not allowed."))
            choice = (parse_qs(body.decode("utf-8", "replace")).get("choice") or [""])[0]
            if choice not in ("approve", "decline", "cancel"):
                raise BadRequest("choice must be approve, decline or cancel")
            finished = self.gateway.customer_acts(payment_id, choice)
            note = f"challenge {payment_id} {choice}"
            target = finished.return_url if finished is not None else None
            if target:
                return Response.see_other(target, note=note)
            return Response.html(HTTPStatus.OK, done_page("You can close this page."), note=note)
        if payment.action.get("method") == "POST":
            if method != "POST":
                response = Response.html(HTTPStatus.METHOD_NOT_ALLOWED, done_page("This page is reached by POST."))
                response.headers = {"Allow": "POST"}
                return response
            creq = (parse_qs(body.decode("utf-8", "replace")).get("creq") or [""])[0]
            if creq != payment.action.get("fields", {}).get("creq"):
                raise BadRequest("creq does not match this payment's challenge")
        elif method != "GET":
            response = Response.html(HTTPStatus.METHOD_NOT_ALLOWED, done_page("This page is reached by GET."))
            response.headers = {"Allow": "GET"}
            return response
        if payment.status != "action_required":
            return Response.html(HTTPStatus.OK, done_page("This payment is no longer waiting."))
        return Response.html(HTTPStatus.OK, challenge_page(payment), note=f"challenge {payment_id}")

    # Control endpoints (work in every mode)

    def _control(self, method: str, path: str, body: bytes) -> Response:
        gateway = self.gateway
        if path == "/_sandbox/mode" and method == "GET":
            return Response.json(HTTPStatus.OK, gateway.mode.as_dict())
        if path == "/_sandbox/mode" and method == "POST":
            try:
                changes = json.loads(body or b"{}")
            except ValueError:
                raise BadRequest("body must be a JSON object") from None
            if not isinstance(changes, dict):
                raise BadRequest("body must be a JSON object")
            try:
                mode = gateway.update_mode(changes)
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
            return Response.json(HTTPStatus.OK, mode.as_dict(), note=f"mode={json.dumps(mode.as_dict())}")
        if path == "/_sandbox/payments" and method == "GET":
            # Refunds in a list of their own: whoever reads "payments" sees payments only, as before.
            listing = {
                "payments": [payment.listing() for payment in gateway.store.all(Payment)],
                "refunds": [refund.listing() for refund in gateway.store.all(Refund)],
            }
            return Response.json(HTTPStatus.OK, listing)
        if path.startswith("/_sandbox/payments/") and path.endswith("/pay") and method == "POST":
            # Plays the customer paying a displayed code in their banking app.
            payment_id = unquote(path.removeprefix("/_sandbox/payments/").removesuffix("/pay"))
            payment = gateway.payment_by_id(payment_id)
            if payment is None or payment.action is None or payment.action.get("type") != "display_code":
                return _json_error(HTTPStatus.NOT_FOUND, "not_found", "no payment waiting for a code with this id")
            finished = gateway.customer_acts(payment_id, "approve")
            return Response.json(HTTPStatus.OK, finished.listing() if finished else {}, note=f"paid {payment_id}")
        if path == "/_sandbox/reset" and method == "POST":
            gateway.reset()
            return Response.json(HTTPStatus.OK, {"status": "reset", **gateway.mode.as_dict()})
        return _json_error(HTTPStatus.NOT_FOUND, "not_found", f"no route for {method} {path}")


# --- Running ----------------------------------------------------------------------------------


class SandboxServer:
    """The HTTP server and gateway together; `start` serves from a background thread."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.gateway = SandboxGateway(config)
        try:
            self.httpd = SandboxHTTPServer((config.host, config.port), self.gateway)
        except BaseException:
            self.gateway.close()
            raise
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"http://{host}:{self.httpd.server_address[1]}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="sandbox-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.gateway.stopping.set()  # ends `timeout` mode delays at once
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(5)
        self.httpd.server_close()
        self.gateway.close()


def run_forever(config: SandboxConfig, announce: Callable[[str], None]) -> None:
    """Serve until SIGTERM or SIGINT, then shut down cleanly. Must run in the main thread."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    server = SandboxServer(config)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        announce(f"sandbox {config.code} ({config.format}) listening on {server.url}")
        while not stop.wait(0.5):
            pass
        logger.info("sandbox %s: stopping", config.code)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
