"""A scripted gateway on loopback for the adapters' tests: it answers each (method, path) with a
recorded payload (gateways/tests/payloads), can hold an answer to cause a timeout, and records
what it was sent. Beside it, the requests and credentials an adapter is given."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from gateways.adapters.soap_transformers import SANDBOX_NS, SOAP_ENV_NS
from gateways.types import GatewayCredentials, PaymentRequest, RefundRequest
from testing.stack import ROOT

PAYLOADS = ROOT / "gateways" / "tests" / "payloads"
API_KEY = "sk_test_9f8e7d6c5b4a"
# Paygate's one definition of the namespaces; the recorded payloads and the sandbox spell them independently.
SOAP_ENV = f"{{{SOAP_ENV_NS}}}"
SANDBOX = f"{{{SANDBOX_NS}}}"
# A test about a timeout: the stub holds its answer until the test ends (`release`), and the client
# gives up after this. Every other test: a read timeout no loaded machine comes near, so that a
# slow answer is never taken for a timeout.
READ_TIMEOUT = 0.3
PATIENT_READ_TIMEOUT = 10.0


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


@dataclass(frozen=True)
class Canned:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    hang: bool = False  # wait for the test's release event before answering


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class StubGateway:
    server: ThreadingHTTPServer
    routes: dict[tuple[str, str], Canned] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, method: str, path: str, canned: Canned) -> None:
        self.routes[(method, path)] = canned

    def reset(self) -> None:
        self.release.set()  # frees any handler still hanging from the previous test
        self.release = threading.Event()
        self.routes.clear()
        self.seen.clear()

    @property
    def last(self) -> Seen:
        assert self.seen, "the gateway received no request"
        return self.seen[-1]

    @classmethod
    def start(cls) -> StubGateway:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        stub = cls(server=server)
        server.stub = stub  # type: ignore[attr-defined]
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        return stub

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's pool is exercised
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: ThreadingHTTPServer

    def _serve(self) -> None:
        stub: StubGateway = self.server.stub  # type: ignore[attr-defined]
        release = stub.release
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        stub.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        canned = stub.routes.get((self.command, self.path), Canned(404, b'{"error": "no route"}'))
        if canned.hang:
            release.wait(timeout=5)
        try:
            self.send_response(canned.status)
            self.send_header("Content-Type", canned.content_type)
            self.send_header("Content-Length", str(len(canned.body)))
            self.end_headers()
            self.wfile.write(canned.body)
        except OSError:
            self.close_connection = True  # the client gave up waiting

    do_GET = do_POST = _serve

    def log_message(self, format: str, *args: object) -> None:
        pass


def credentials(
    base_url: str, code: str = "sandbox", *, read_timeout: float = PATIENT_READ_TIMEOUT
) -> GatewayCredentials:
    return GatewayCredentials(
        code=code, base_url=base_url, api_key=API_KEY, connect_timeout=0.5, read_timeout=read_timeout
    )


def read_timeout_for(request: pytest.FixtureRequest) -> float:
    """Short only for a test about a timeout: one named so, or one given a stub answer that hangs."""
    callspec = getattr(request.node, "callspec", None)
    params = callspec.params.values() if callspec else ()
    hangs = any(isinstance(value, Canned) and value.hang for value in _flatten(params))
    return READ_TIMEOUT if hangs or "timeout" in request.node.name else PATIENT_READ_TIMEOUT


def _flatten(values: Any) -> Iterator[Any]:
    for value in values:
        if isinstance(value, (tuple, list)):
            yield from _flatten(value)
        else:
            yield value


def make_request(**overrides: object) -> PaymentRequest:
    values: dict[str, object] = {
        "reference": "att_0001",
        "transaction_id": "txn_42",
        "type": "deposit",
        "amount": Decimal("25.00"),
        "currency": "EUR",
        "country": "DE",
        "customer_id": "cust_<7>&'\"",
        "callback_url": "https://paygate.example/callbacks/sandbox?x=1&y=2",
    }
    values.update(overrides)
    return PaymentRequest(**values)  # type: ignore[arg-type]


def soap_fault(code: str, message: str = "boom") -> bytes:
    return (
        f'<?xml version="1.0"?><soap:Envelope xmlns:soap="{SOAP_ENV_NS}">'
        f"<soap:Body><soap:Fault><faultcode>{code}</faultcode><faultstring>{message}</faultstring>"
        "</soap:Fault></soap:Body></soap:Envelope>"
    ).encode()


def xml_canned(status: int, name: str) -> Canned:
    return Canned(status, payload(name), "text/xml; charset=utf-8")


def json_canned(status: int, name: str) -> Canned:
    return Canned(status, payload(name))


def make_refund(**overrides: object) -> RefundRequest:
    values: dict[str, object] = {
        "reference": "rf_0001",
        "payment_id": "pay_7f3a91c2",
        "amount": Decimal("10.00"),
        "currency": "EUR",
        "callback_url": "https://paygate.example/callbacks/sandbox?x=1&y=2",
    }
    values.update(overrides)
    return RefundRequest(**values)  # type: ignore[arg-type]
