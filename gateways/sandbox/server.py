"""A fake payment gateway, served over HTTP, speaking either the JSON or the SOAP protocol.

Integration tests and local runs start one process per gateway (`manage.py
run_sandbox_gateway`). It records what it receives, answers like a real gateway,
calls back later from background threads, and can be switched at run time into
failure modes through `POST /_sandbox/mode`. It never touches the database.

Layers, from the inside out:
- `PaymentStore`: the payments received, by reference (in memory, optionally a JSON file).
- `SandboxGateway`: protocol-independent behaviour (modes, idempotency, callbacks).
- `SandboxRequestHandler`: the two wire protocols and the `/_sandbox/*` control endpoints.
- `SandboxServer` / `run_forever`: the threaded HTTP server and its signal handling.
"""

from __future__ import annotations

import dataclasses
import heapq
import hmac
import itertools
import json
import logging
import os
import random
import signal
import socket
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

import defusedxml
import defusedxml.ElementTree
import requests

from .wsdl import SANDBOX_NS, render_wsdl

logger = logging.getLogger("gateways.sandbox")

Format = Literal["json", "xml"]

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"

MODES = ("ok", "down", "error", "timeout", "decline", "flaky")


def sign_callback(*, secret: str, body: bytes, timestamp: int) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, as a third-party gateway signs.

    Written apart from Paygate's verifier on purpose: a shared implementation would hide a
    bug in both. A known-answer test pins each of them to the same published vector.
    """
    mac = hmac.new(secret.encode("utf-8"), b"%d.%s" % (timestamp, body), "sha256")
    return f"t={timestamp},v1={mac.hexdigest()}"


CALLBACK_CHOICES = ("completed", "failed", "none")
PAYMENT_TYPES = ("deposit", "withdrawal")
DECLINE_REASON = "insufficient_funds"
CALLBACK_FAILURE_REASON = "rejected_by_bank"

CALLBACK_TIMEOUT_SECONDS = 5.0
# Waits before the 2nd..5th delivery try; after the 5th failure the callback is dropped.
CALLBACK_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)
# With duplicate_callbacks the second copy trails the first by this much.
DUPLICATE_CALLBACK_GAP_SECONDS = 0.1
# The largest `callback_jitter` accepted: a random extra delay per callback, to reorder deliveries.
MAX_CALLBACK_JITTER_SECONDS = 60.0
# Several delivery threads, so one unreachable callback URL (5 s timeouts) does not hold up the rest.
CALLBACK_WORKERS = 4
RESET_DRAIN_SECONDS = CALLBACK_TIMEOUT_SECONDS + 1.0  # a reset waits this long for deliveries in flight
MAX_BODY_BYTES = 1024 * 1024

# Wire field name -> internal name, for each protocol.
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
SOAP_PAYMENT_FIELDS = {
    "Reference": "reference",
    "TransactionId": "transaction_id",
    "Type": "type",
    "Amount": "amount",
    "Currency": "currency",
    "Country": "country",
    "CustomerId": "customer_id",
    "CallbackUrl": "callback_url",
}
SOAP_STATUS = {"accepted": "Accepted", "completed": "Completed", "failed": "Failed", "declined": "Failed"}


def default_api_key(code: str) -> str:
    return f"demo-{code}-api-key"


def default_webhook_secret(code: str) -> str:
    return f"demo-{code}-webhook-secret"


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _secret_matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class BadRequest(ValueError):
    """The request is malformed: 400 (JSON) or a `Client.BadRequest` fault (SOAP)."""


# --- Configuration and run-time settings ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    code: str
    format: Format
    port: int
    host: str = "127.0.0.1"
    api_key: str = ""  # empty: `default_api_key(code)`
    webhook_secret: str = ""  # empty: `default_webhook_secret(code)`
    callback_delay: float = 0.5
    timeout_delay: float = 15.0
    state_file: Path | None = None

    def __post_init__(self) -> None:
        if self.format not in ("json", "xml"):
            raise ValueError(f"format must be 'json' or 'xml', not {self.format!r}")
        if not self.api_key:
            object.__setattr__(self, "api_key", default_api_key(self.code))
        if not self.webhook_secret:
            object.__setattr__(self, "webhook_secret", default_webhook_secret(self.code))


@dataclass(frozen=True, slots=True)
class ModeSettings:
    mode: str = "ok"
    failure_rate: float = 0.3
    callback: str = "completed"
    duplicate_callbacks: bool = False
    # Each callback waits callback_delay + uniform(0, callback_jitter): deliveries then arrive out of order.
    callback_jitter: float = 0.0

    def updated(self, changes: Mapping[str, Any]) -> ModeSettings:
        """A copy with `changes` applied; ValueError names the first invalid key or value."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        mode = changes.get("mode", self.mode)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        rate = changes.get("failure_rate", self.failure_rate)
        # bool is an int subclass: refuse `true` as a rate.
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
            raise ValueError("failure_rate must be a number between 0 and 1")
        callback = changes.get("callback", self.callback)
        if callback not in CALLBACK_CHOICES:
            raise ValueError(f"callback must be one of {', '.join(CALLBACK_CHOICES)}")
        duplicate = changes.get("duplicate_callbacks", self.duplicate_callbacks)
        if not isinstance(duplicate, bool):
            raise ValueError("duplicate_callbacks must be true or false")
        jitter = changes.get("callback_jitter", self.callback_jitter)
        if (
            isinstance(jitter, bool)
            or not isinstance(jitter, int | float)
            or not 0.0 <= jitter <= MAX_CALLBACK_JITTER_SECONDS  # also refuses NaN
        ):
            raise ValueError(
                f"callback_jitter must be a number of seconds between 0 and {MAX_CALLBACK_JITTER_SECONDS:g}"
            )
        return ModeSettings(
            mode=mode,
            failure_rate=float(rate),
            callback=callback,
            duplicate_callbacks=duplicate,
            callback_jitter=float(jitter),
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- Payments ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaymentFields:
    """A payment request's content, whichever protocol carried it."""

    reference: str
    transaction_id: str
    type: str
    amount: str
    currency: str
    country: str
    customer_id: str
    callback_url: str

    @classmethod
    def parse(cls, raw: Mapping[str, object], names: Mapping[str, str]) -> PaymentFields:
        """Validate `raw` (wire name -> value); `names` maps wire names to field names."""
        values: dict[str, str] = {}
        for wire_name, name in names.items():
            value = raw.get(wire_name)
            if name == "amount" and isinstance(value, int | float) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str) or not value.strip():
                raise BadRequest(f"{wire_name} is required and must be a non-empty string")
            values[name] = value.strip()
        try:
            amount = Decimal(values["amount"])
        except InvalidOperation:
            raise BadRequest("amount must be a decimal number") from None
        if not amount.is_finite() or amount <= 0:
            raise BadRequest("amount must be a positive decimal number")
        if values["type"] not in PAYMENT_TYPES:
            raise BadRequest(f"type must be one of {', '.join(PAYMENT_TYPES)}")
        callback = urlsplit(values["callback_url"])
        if callback.scheme not in ("http", "https") or not callback.netloc:
            raise BadRequest("callback_url must be an http(s) URL")
        return cls(**values)


@dataclass(slots=True)
class Payment:
    reference: str
    payment_id: str
    transaction_id: str
    type: str
    amount: str
    currency: str
    country: str
    customer_id: str
    callback_url: str
    status: str  # accepted | declined | completed | failed
    reason: str | None
    received_at: str
    requests: int = 1
    # The outcome a scheduled, not yet sent callback will report (kept so a restart with a
    # state file can reschedule it); None once sent, or when no callback is due.
    pending_callback: str | None = None
    duplicate_callback: bool = False
    callbacks_delivered: int = 0

    def listing(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "payment_id": self.payment_id,
            "transaction_id": self.transaction_id,
            "type": self.type,
            "amount": self.amount,
            "currency": self.currency,
            "country": self.country,
            "customer_id": self.customer_id,
            "status": self.status,
            "reason": self.reason,
            "received_at": self.received_at,
            "requests": self.requests,
            "callbacks_delivered": self.callbacks_delivered,
        }

    @property
    def lookup_status(self) -> str:
        """accepted | completed | failed: a decline is a failed payment to a look-up."""
        return "failed" if self.status == "declined" else self.status


class PaymentStore:
    """Payments by reference, guarded by a lock; with a state file, saved after each change.

    Every method returns copies, so callers never read a payment while another thread
    changes it.
    """

    def __init__(self, state_file: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._payments: dict[str, Payment] = {}
        self._state_file = state_file
        if state_file is not None and state_file.exists():
            self._payments = self._load(state_file)

    @staticmethod
    def _load(path: Path) -> dict[str, Payment]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            payments = [Payment(**item) for item in data["payments"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"state file {path} is unreadable: {exc!r}") from exc
        return {payment.reference: payment for payment in payments}

    def _save(self) -> None:
        """Write the state file atomically (temp file + rename). The caller holds the lock."""
        if self._state_file is None:
            return
        directory = self._state_file.parent
        directory.mkdir(parents=True, exist_ok=True)
        content = json.dumps({"payments": [dataclasses.asdict(p) for p in self._payments.values()]}, indent=1)
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{self._state_file.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as tmp:
                tmp.write(content)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, self._state_file)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def record(self, payment: Payment) -> tuple[Payment, bool]:
        """Store `payment` unless its reference is known: then count the repeat on the existing one.

        Returns (the stored payment, whether it was created now).
        """
        with self._lock:
            existing = self._payments.get(payment.reference)
            if existing is not None:
                existing.requests += 1
                self._save()
                return dataclasses.replace(existing), False
            self._payments[payment.reference] = dataclasses.replace(payment)
            self._save()
            return dataclasses.replace(payment), True

    def get(self, reference: str) -> Payment | None:
        with self._lock:
            payment = self._payments.get(reference)
            return None if payment is None else dataclasses.replace(payment)

    def finish(self, reference: str, status: str, reason: str | None) -> Payment | None:
        """Move an accepted payment to its final `status`; None if the reference is unknown."""
        with self._lock:
            payment = self._payments.get(reference)
            if payment is None:
                return None
            if payment.status == "accepted":
                payment.status = status
                payment.reason = reason
                payment.pending_callback = None
                self._save()
            return dataclasses.replace(payment)

    def count_delivery(self, reference: str) -> None:
        with self._lock:
            payment = self._payments.get(reference)
            if payment is not None:
                payment.callbacks_delivered += 1
                self._save()

    def all(self) -> list[Payment]:
        with self._lock:
            return [dataclasses.replace(p) for p in self._payments.values()]

    def clear(self) -> None:
        with self._lock:
            self._payments.clear()
            self._save()


# --- Background scheduling and callbacks ----------------------------------------------------


class Scheduler:
    """Runs functions after a delay on a few daemon threads sharing one time-ordered queue."""

    def __init__(self, workers: int, name: str) -> None:
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()  # ties in due time keep insertion order
        self._cond = threading.Condition()
        self._stopped = False
        self._running = 0
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cond:
            if self._stopped:
                return
            heapq.heappush(self._queue, (time.monotonic() + max(delay, 0.0), next(self._seq), fn))
            self._cond.notify_all()  # `wait_idle` waits on the same condition

    def clear(self) -> None:
        with self._cond:
            self._queue.clear()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no function is running; False if some still were at the deadline."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._running:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def stop(self, timeout: float = 2.0) -> None:
        """Drop what is queued and wait (briefly) for running functions to finish."""
        with self._cond:
            self._stopped = True
            self._queue.clear()
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._queue or self._queue[0][0] > time.monotonic()):
                    wait = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._cond.wait(wait)
                if self._stopped:
                    return
                _, _, fn = heapq.heappop(self._queue)
                self._running += 1
            try:
                fn()
            except Exception:
                logger.exception("sandbox background task failed")
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()


@dataclass(frozen=True, slots=True)
class CallbackJob:
    reference: str
    event_id: str
    status: str  # completed | failed
    reason: str | None
    generation: int  # the gateway's reset generation when scheduled: a reset drops older jobs
    attempt: int = 1


# --- The gateway's behaviour ----------------------------------------------------------------


class SandboxGateway:
    """What the gateway does, independent of the wire protocol."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = PaymentStore(config.state_file)
        self.stopping = threading.Event()
        self._mode = ModeSettings()
        self._lock = threading.Lock()
        self._generation = 0
        self._scheduler = Scheduler(CALLBACK_WORKERS, name=f"sandbox-{config.code}-callbacks")
        # One HTTP session per delivery thread, so callbacks reuse their connections as a real
        # gateway's would (requests.Session is not meant to be shared between threads).
        self._http = threading.local()
        # Callbacks that were due when a previous process (same state file) stopped.
        for payment in self.store.all():
            if payment.pending_callback is not None:
                self._schedule_callback(payment.reference, payment.pending_callback, payment.duplicate_callback)

    # Modes

    @property
    def mode(self) -> ModeSettings:
        with self._lock:
            return self._mode

    def update_mode(self, changes: Mapping[str, Any]) -> ModeSettings:
        with self._lock:
            self._mode = self._mode.updated(changes)
            return self._mode

    def reset(self) -> None:
        """Forget every payment and pending callback, and go back to the default settings.

        Returns once no callback is being delivered any more, so that after a reset nothing
        from before it reaches the merchant.
        """
        with self._lock:
            self._generation += 1
            self._mode = ModeSettings()
        self._scheduler.clear()
        self.store.clear()
        if not self._scheduler.wait_idle(RESET_DRAIN_SECONDS):
            logger.warning("sandbox %s: a callback was still being delivered after the reset", self.config.code)

    @staticmethod
    def flaky_fails(mode: ModeSettings) -> bool:
        return mode.mode == "flaky" and random.random() < mode.failure_rate  # nosec B311  # simulated flakiness

    # Payments

    def submit(self, fields: PaymentFields, mode: ModeSettings) -> tuple[Payment, bool]:
        """Record a payment request, or count a repeat of its reference; schedule its callback.

        A repeat gets the payment as first recorded (same id, same decline) and no new callback.
        """
        declined = mode.mode == "decline"
        callback = None if declined or mode.callback == "none" else mode.callback
        payment = Payment(
            **dataclasses.asdict(fields),
            payment_id=f"pay_{uuid.uuid4().hex}",
            status="declined" if declined else "accepted",
            reason=DECLINE_REASON if declined else None,
            received_at=_utc_now(),
            pending_callback=callback,
            duplicate_callback=callback is not None and mode.duplicate_callbacks,
        )
        stored, created = self.store.record(payment)
        if created and callback is not None:
            self._schedule_callback(stored.reference, callback, stored.duplicate_callback)
        return stored, created

    def lookup(self, reference: str) -> Payment | None:
        return self.store.get(reference)

    # Callbacks

    def _schedule_callback(self, reference: str, status: str, duplicate: bool) -> None:
        with self._lock:
            generation = self._generation
        job = CallbackJob(
            reference=reference,
            event_id=f"evt_{uuid.uuid4().hex}",
            status=status,
            reason=CALLBACK_FAILURE_REASON if status == "failed" else None,
            generation=generation,
        )
        # With callback_jitter each delivery (a duplicate copy too) draws its own extra delay,
        # so callbacks of different payments, and the two copies of one, arrive in any order.
        jitter = self.mode.callback_jitter
        delay = self.config.callback_delay + (random.uniform(0.0, jitter) if jitter else 0.0)  # nosec B311
        self._scheduler.call_later(delay, partial(self._deliver, job))
        if duplicate:
            extra = random.uniform(0.0, jitter) if jitter else 0.0  # nosec B311  # simulated reordering
            self._scheduler.call_later(
                self.config.callback_delay + DUPLICATE_CALLBACK_GAP_SECONDS + extra, partial(self._deliver, job)
            )

    def callback_body(self, job: CallbackJob, payment_id: str) -> tuple[bytes, str]:
        """The notification body and its content type, in this gateway's format."""
        if self.config.format == "json":
            body = {
                "event_id": job.event_id,
                "payment_id": payment_id,
                "reference": job.reference,
                "status": job.status,
                "reason": job.reason,
            }
            return json.dumps(body).encode(), "application/json"
        reason = f"<Reason>{escape(job.reason)}</Reason>" if job.reason else "<Reason/>"
        xml = (
            '<?xml version="1.0" encoding="utf-8"?>\n'
            "<PaymentNotification>"
            f"<EventId>{escape(job.event_id)}</EventId>"
            f"<PaymentId>{escape(payment_id)}</PaymentId>"
            f"<Reference>{escape(job.reference)}</Reference>"
            f"<Status>{SOAP_STATUS[job.status]}</Status>"
            f"{reason}"
            "</PaymentNotification>"
        )
        return xml.encode(), "application/xml"

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._http, "session", None)
        if session is None:
            session = self._http.session = requests.Session()
        return session

    def _deliver(self, job: CallbackJob) -> None:
        with self._lock:
            if job.generation != self._generation:
                return
        # The payment finishes when its callback is first sent, whether or not delivery works:
        # a look-up then reports the final status, as a real gateway's would.
        payment = self.store.finish(job.reference, job.status, job.reason)
        if payment is None:
            return
        body, content_type = self.callback_body(job, payment.payment_id)
        headers = {
            "Content-Type": content_type,
            "X-Signature": sign_callback(secret=self.config.webhook_secret, body=body, timestamp=int(time.time())),
        }
        try:
            response = self._session().post(
                payment.callback_url,
                data=body,
                headers=headers,
                timeout=CALLBACK_TIMEOUT_SECONDS,
                allow_redirects=False,
            )
            delivered, outcome = 200 <= response.status_code < 300, f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            delivered, outcome = False, type(exc).__name__
        summary = f"callback {job.event_id} ref={job.reference} {job.status} try {job.attempt}: {outcome}"
        if delivered:
            self.store.count_delivery(job.reference)
            logger.info("sandbox %s: %s", self.config.code, summary)
        elif job.attempt > len(CALLBACK_RETRY_DELAYS) or self.stopping.is_set():
            logger.warning("sandbox %s: %s; giving up", self.config.code, summary)
        else:
            delay = CALLBACK_RETRY_DELAYS[job.attempt - 1]
            logger.info("sandbox %s: %s; retrying in %.1fs", self.config.code, summary, delay)
            retry = dataclasses.replace(job, attempt=job.attempt + 1)
            self._scheduler.call_later(delay, partial(self._deliver, retry))

    def close(self) -> None:
        self.stopping.set()
        self._scheduler.stop()


# --- SOAP helpers ---------------------------------------------------------------------------


class SoapFault(Exception):
    def __init__(self, code: str, message: str, http_status: int = HTTPStatus.INTERNAL_SERVER_ERROR) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


def soap_envelope(inner: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV_NS}"><soap:Body>{inner}</soap:Body></soap:Envelope>'
    ).encode()


def soap_response(operation: str, values: list[tuple[str, str]]) -> bytes:
    children = "".join(f"<{name}>{escape(value)}</{name}>" if value else f"<{name}/>" for name, value in values)
    return soap_envelope(f'<{operation}Response xmlns="{SANDBOX_NS}">{children}</{operation}Response>')


def soap_fault(code: str, message: str) -> bytes:
    # faultcode is unprefixed ("Client.Authentication"), as the gateway contract spells it.
    return soap_envelope(
        f"<soap:Fault><faultcode>{escape(code)}</faultcode><faultstring>{escape(message)}</faultstring></soap:Fault>"
    )


def parse_soap_request(body: bytes) -> tuple[str, dict[str, str]]:
    """(operation, {child local name: text}) from a SOAP 1.1 request; SoapFault if malformed.

    Parsed only with defusedxml, refusing any DTD (so no entity expansion, no XXE).
    """
    try:
        root = defusedxml.ElementTree.fromstring(body, forbid_dtd=True)
    except defusedxml.DefusedXmlException as exc:
        raise SoapFault("Client.BadRequest", f"Forbidden XML construct: {type(exc).__name__}") from None
    except ET.ParseError:
        raise SoapFault("Client.BadRequest", "Malformed XML") from None
    if root.tag != f"{{{SOAP_ENV_NS}}}Envelope":
        raise SoapFault("Client.BadRequest", "Not a SOAP 1.1 envelope")
    soap_body = root.find(f"{{{SOAP_ENV_NS}}}Body")
    if soap_body is None or len(soap_body) == 0:
        raise SoapFault("Client.BadRequest", "The SOAP Body is missing or empty")
    operation = soap_body[0]
    prefix = f"{{{SANDBOX_NS}}}"
    if not operation.tag.startswith(prefix):
        raise SoapFault("Client.BadRequest", f"The operation must be in namespace {SANDBOX_NS}")
    params: dict[str, str] = {}
    for child in operation:
        if child.tag.startswith(prefix):
            params.setdefault(child.tag[len(prefix) :], (child.text or "").strip())
    return operation.tag[len(prefix) :], params


def soap_action(header: str | None) -> str:
    """The operation named by a SOAPAction header, quoted or not ("" if absent)."""
    action = (header or "").strip().strip('"').strip()
    # Tolerate a namespaced action such as "urn:paygate:sandbox/ProcessPayment".
    return action.rsplit("/", 1)[-1].rsplit("#", 1)[-1]


# --- HTTP -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    note: str = ""  # appended to the request's log line

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
        config = self.gateway.config
        if self.gateway.mode.mode == "down":
            if config.format == "xml" and path == "/soap":
                down = SoapFault("Server.Unavailable", "Gateway is down", HTTPStatus.SERVICE_UNAVAILABLE)
                return Response.fault(down)
            return _json_error(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "gateway is down")
        if path == "/health" and method == "GET":
            return Response.json(HTTPStatus.OK, {"status": "ok"})
        if config.format == "json":
            if path == "/payments" and method == "POST":
                return self._json_payment(body)
            if path.startswith("/payments/") and method == "GET":
                return self._json_lookup(path.removeprefix("/payments/"))
        elif path == "/soap":
            if method == "GET" and "wsdl" in {key.lower() for key in parse_qs(query, keep_blank_values=True)}:
                return self._wsdl()
            if method == "POST":
                return self._soap(body)
        return _json_error(HTTPStatus.NOT_FOUND, "not_found", f"no route for {method} {path}")

    # JSON protocol

    def _bearer(self) -> str | None:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    def _json_payment(self, body: bytes) -> Response:
        if not _secret_matches(self._bearer(), self.gateway.config.api_key):
            return _json_error(HTTPStatus.UNAUTHORIZED, "unauthorized", "invalid or missing API key")
        try:
            data = json.loads(body)
        except ValueError:
            raise BadRequest("body must be a JSON object") from None
        if not isinstance(data, dict):
            raise BadRequest("body must be a JSON object")
        fields = PaymentFields.parse(data, JSON_PAYMENT_FIELDS)
        mode = self.gateway.mode
        if mode.mode == "error":
            return _json_error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "sandbox error mode")
        if self.gateway.flaky_fails(mode):
            return _json_error(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "sandbox flaky mode")
        payment, created = self.gateway.submit(fields, mode)
        self._timeout_delay(mode)
        note = f"ref={payment.reference} {payment.status}" + ("" if created else f" repeat#{payment.requests}")
        if payment.status == "declined":
            return Response.json(HTTPStatus.OK, {"status": "declined", "reason": payment.reason}, note=note)
        accepted = {"payment_id": payment.payment_id, "status": "accepted"}
        return Response.json(HTTPStatus.ACCEPTED, accepted, note=note)

    def _json_lookup(self, raw_reference: str) -> Response:
        # The contract only requires the key on POST; a look-up that sends a wrong one is refused.
        if self.headers.get("Authorization") is not None and not _secret_matches(
            self._bearer(), self.gateway.config.api_key
        ):
            return _json_error(HTTPStatus.UNAUTHORIZED, "unauthorized", "invalid API key")
        reference = unquote(raw_reference)
        payment = self.gateway.lookup(reference) if reference and "/" not in raw_reference else None
        if payment is None:
            return _json_error(HTTPStatus.NOT_FOUND, "not_found", "no payment with this reference")
        data = {
            "payment_id": payment.payment_id,
            "reference": payment.reference,
            "status": payment.lookup_status,
            "reason": payment.reason,
        }
        return Response.json(HTTPStatus.OK, data, note=f"ref={reference} {payment.lookup_status}")

    def _timeout_delay(self, mode: ModeSettings) -> None:
        if mode.mode == "timeout":
            self.gateway.stopping.wait(self.gateway.config.timeout_delay)

    # SOAP protocol

    def _wsdl(self) -> Response:
        config = self.gateway.config
        host = self.headers.get("Host") or f"{config.host}:{self.server.server_address[1]}"
        return Response.xml(HTTPStatus.OK, render_wsdl(f"http://{host}/soap").encode())

    def _soap(self, body: bytes) -> Response:
        try:
            operation, params = parse_soap_request(body)
            action = soap_action(self.headers.get("SOAPAction"))
            if action and action != operation:
                raise SoapFault("Client.BadRequest", f"SOAPAction {action!r} does not match the body ({operation})")
            if operation not in ("ProcessPayment", "GetPaymentStatus"):
                raise SoapFault("Client.BadRequest", f"Unknown operation {operation}")
            if not _secret_matches(params.get("ApiKey"), self.gateway.config.api_key):
                raise SoapFault("Client.Authentication", "Invalid API key")
            if operation == "GetPaymentStatus":
                return self._soap_lookup(params)
            return self._soap_payment(params)
        except SoapFault as fault:
            return Response.fault(fault)

    def _soap_payment(self, params: dict[str, str]) -> Response:
        try:
            fields = PaymentFields.parse(params, SOAP_PAYMENT_FIELDS)
        except BadRequest as exc:
            raise SoapFault("Client.BadRequest", str(exc)) from None
        mode = self.gateway.mode
        if mode.mode == "error":
            raise SoapFault("Server.Error", "Internal gateway error")
        if self.gateway.flaky_fails(mode):
            raise SoapFault("Server.Unavailable", "Gateway temporarily unavailable")
        payment, created = self.gateway.submit(fields, mode)
        self._timeout_delay(mode)
        note = f"ProcessPayment ref={payment.reference} {payment.status}"
        note += "" if created else f" repeat#{payment.requests}"
        if payment.status == "declined":
            values = [("PaymentId", ""), ("Status", "Declined"), ("Reason", payment.reason or "")]
        else:
            values = [("PaymentId", payment.payment_id), ("Status", "Accepted"), ("Reason", "")]
        return Response.xml(HTTPStatus.OK, soap_response("ProcessPayment", values), note=note)

    def _soap_lookup(self, params: dict[str, str]) -> Response:
        reference = params.get("Reference", "")
        payment = self.gateway.lookup(reference) if reference else None
        if payment is None:
            raise SoapFault("Client.NotFound", "No payment with this reference")
        values = [("PaymentId", payment.payment_id), ("Status", SOAP_STATUS[payment.status])]
        note = f"GetPaymentStatus ref={reference} {payment.lookup_status}"
        return Response.xml(HTTPStatus.OK, soap_response("GetPaymentStatus", values), note=note)

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
            return Response.json(HTTPStatus.OK, {"payments": [p.listing() for p in gateway.store.all()]})
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
