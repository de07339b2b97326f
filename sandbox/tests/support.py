"""What the sandbox's tests share: starting a sandbox process, receiving its callbacks, and
speaking its protocol from the contract, as a merchant would (nothing of Paygate is imported).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import defusedxml.ElementTree
import requests

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SB = "urn:paygate:sandbox"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
XSD = "http://www.w3.org/2001/XMLSchema"
STARTUP_DEADLINE = 60.0
QUIET_PERIOD = 0.5  # how long "no further callback" is watched for (callback delay is 0.05 s)
SIGNATURE_TOLERANCE_SECONDS = 300
# The two ways to start a sandbox: the contract's command (manage.py hands it over), and the package itself.
MANAGE_PY = ("manage.py", "run_sandbox_gateway")
PYTHON_M = ("-m", "sandbox")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Any, timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.02)


# --- Callback receiver ------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class CallbackReceiver:
    """Records every POST it gets; answers 200, or 500 while `fail_next` is positive.

    While `answering` is clear, a POST is recorded but not answered until it is set again.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.fail_next = 0
        self.answering = threading.Event()
        self.answering.set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    failing = receiver.fail_next > 0
                    receiver.fail_next -= 1 if failing else 0
                    receiver.received.append(Received(self.path, dict(self.headers.items()), body))
                receiver.answering.wait(30)
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "/callbacks") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def clear(self) -> None:
        with self._lock:
            self.received.clear()
            self.fail_next = 0
        self.answering.set()

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        message = f"expected {count} callback(s), got {self.snapshot()}"
        wait_until(lambda: len(self.snapshot()) >= count, timeout, message)
        return self.snapshot()

    def assert_stays_at(self, count: int) -> None:
        """No further callback arrives during a quiet period."""
        deadline = time.monotonic() + QUIET_PERIOD
        while time.monotonic() < deadline:
            assert len(self.snapshot()) == count, f"unexpected callback(s): {self.snapshot()}"
            time.sleep(0.02)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# --- Sandbox processes ------------------------------------------------------------------------


@dataclass
class Sandbox:
    code: str
    format: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    api_key: str = ""
    secret: str = ""
    _stopped: bool = field(default=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.base_url + path, timeout=kwargs.pop("timeout", 5), **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.post(self.base_url + path, timeout=kwargs.pop("timeout", 5), **kwargs)

    def set_mode(self, **settings: Any) -> dict[str, Any]:
        response = self.post("/_sandbox/mode", json=settings)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def payments(self) -> list[dict[str, Any]]:
        return list(self.get("/_sandbox/payments").json()["payments"])

    def refunds(self) -> list[dict[str, Any]]:
        return list(self.get("/_sandbox/payments").json()["refunds"])

    def reset(self) -> None:
        assert self.post("/_sandbox/reset", timeout=15).status_code == 200

    def stop(self) -> int:
        """SIGTERM, then the exit code (killing it if it does not stop in time)."""
        if self._stopped:
            return self.process.returncode
        self._stopped = True
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise AssertionError(f"sandbox {self.code} ignored SIGTERM:\n{self.log()}") from None


def start_sandbox(log_dir: Path, code: str, fmt: str, *extra: str, launcher: tuple[str, ...] = MANAGE_PY) -> Sandbox:
    port = free_port()
    log_path = log_dir / f"sandbox-{code}-{port}.log"
    command = [
        sys.executable, *launcher,
        "--code", code, "--format", fmt, "--port", str(port),
        "--callback-delay", "0.05", "--timeout-delay", "3",
        *extra,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)
    sandbox = Sandbox(code, fmt, port, process, log_path, f"demo-{code}-api-key", f"demo-{code}-webhook-secret")

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"sandbox {code} exited with {process.returncode}:\n{sandbox.log()}")
        try:
            return sandbox.get("/health", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_until(healthy, STARTUP_DEADLINE, f"sandbox {code} did not become healthy")
    except BaseException:
        process.kill()
        process.wait(5)
        raise
    return sandbox


# --- Protocol helpers -------------------------------------------------------------------------


def payment_fields(receiver: CallbackReceiver, reference: str | None = None) -> dict[str, str]:
    return {
        "reference": reference or f"att_{uuid.uuid4().hex}",
        "transaction_id": f"txn_{uuid.uuid4().hex}",
        "type": "deposit",
        "amount": "125.50",
        "currency": "EUR",
        "country": "DE",
        "customer_id": "cust_42",
        "callback_url": receiver.url(),
    }


def json_pay(gw: Sandbox, body: dict[str, Any], *, api_key: str | None = None, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {api_key or gw.api_key}", "Idempotency-Key": str(body.get("reference"))}
    return gw.post("/payments", json=body, headers=headers, **kwargs)


def soap_request(operation: str, values: dict[str, str]) -> bytes:
    children = "".join(f"<sb:{name}>{escape(value)}</sb:{name}>" for name, value in values.items())
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:sb="{SB}">'
        f"<soapenv:Header/><soapenv:Body><sb:{operation}>{children}</sb:{operation}></soapenv:Body>"
        "</soapenv:Envelope>"
    ).encode()


def soap_post(gw: Sandbox, action: str, body: bytes, *, quoted: bool = True, **kwargs: Any) -> requests.Response:
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"' if quoted else action}
    return gw.post("/soap", data=body, headers=headers, **kwargs)


def soap_pay(
    gw: Sandbox, fields: dict[str, str], *, api_key: str | None = None, quoted: bool = True, **kwargs: Any
) -> requests.Response:
    values = {
        "ApiKey": api_key or gw.api_key,
        "Reference": fields["reference"],
        "TransactionId": fields["transaction_id"],
        "Type": fields["type"],
        "Amount": fields["amount"],
        "Currency": fields["currency"],
        "Country": fields["country"],
        "CustomerId": fields["customer_id"],
        "CallbackUrl": fields["callback_url"],
    }
    return soap_post(gw, "ProcessPayment", soap_request("ProcessPayment", values), quoted=quoted, **kwargs)


def soap_status(gw: Sandbox, reference: str) -> requests.Response:
    body = soap_request("GetPaymentStatus", {"ApiKey": gw.api_key, "Reference": reference})
    return soap_post(gw, "GetPaymentStatus", body)


def refund_fields(
    receiver: CallbackReceiver, payment_id: str, amount: str = "25.00", reference: str | None = None
) -> dict[str, str]:
    return {
        "reference": reference or f"rfd_{uuid.uuid4().hex}",
        "payment_id": payment_id,
        "amount": amount,
        "currency": "EUR",
        "callback_url": receiver.url("/refund-callbacks"),
    }


def json_refund(gw: Sandbox, body: dict[str, Any], *, api_key: str | None = None, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {api_key or gw.api_key}", "Idempotency-Key": str(body.get("reference"))}
    return gw.post("/refunds", json=body, headers=headers, **kwargs)


def soap_refund(gw: Sandbox, fields: dict[str, str], *, api_key: str | None = None, **kwargs: Any) -> requests.Response:
    values = {
        "ApiKey": api_key or gw.api_key,
        "Reference": fields["reference"],
        "PaymentId": fields["payment_id"],
        "Amount": fields["amount"],
        "Currency": fields["currency"],
        "CallbackUrl": fields["callback_url"],
    }
    return soap_post(gw, "ProcessRefund", soap_request("ProcessRefund", values), **kwargs)


def soap_refund_status(gw: Sandbox, reference: str) -> requests.Response:
    body = soap_request("GetRefundStatus", {"ApiKey": gw.api_key, "Reference": reference})
    return soap_post(gw, "GetRefundStatus", body)


def soap_result(response: requests.Response, operation: str) -> dict[str, str]:
    root = defusedxml.ElementTree.fromstring(response.content, forbid_dtd=True)
    result = root.find(f"{{{SOAP_ENV}}}Body/{{{SB}}}{operation}Response")
    assert result is not None, response.text
    return {child.tag.removeprefix(f"{{{SB}}}"): child.text or "" for child in result}


def soap_fault_code(response: requests.Response) -> str:
    root = defusedxml.ElementTree.fromstring(response.content, forbid_dtd=True)
    fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None, response.text
    return fault.findtext("faultcode") or ""


def xml_children(element: Element) -> dict[str, str]:
    return {child.tag: child.text or "" for child in element}


def assert_signed(gw: Sandbox, callback: Received) -> None:
    """`X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, recent, with gw's secret.

    Checked from the contract here; callbacks/tests/test_signing.py pins the sandbox's signer
    and Paygate's verifier to one known answer.
    """
    header = callback.headers.get("X-Signature", "")
    match = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", header)
    assert match is not None, f"malformed X-Signature {header!r}"
    timestamp, signature = match.groups()
    assert abs(time.time() - int(timestamp)) <= SIGNATURE_TOLERANCE_SECONDS, header
    expected = hmac.new(gw.secret.encode(), f"{timestamp}.".encode() + callback.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected), f"X-Signature {header!r} does not sign the body"
