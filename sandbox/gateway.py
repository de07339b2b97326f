"""What a sandbox gateway does, whichever wire protocol carried the request.

- Modes, switched at run time (`POST /_sandbox/mode`): answer, go down, fail, hang,
  decline, or fail at random; in `ok` mode decline a share of requests; answer every
  request late by a fixed latency; and how callbacks behave (outcome, duplicates, jitter).
  Payments and refunds alike.
- Refunds: of a payment this gateway knows (by its `payment_id`), never more in total
  than the payment's amount (refunds declined or failed aside); any other is declined.
- Idempotency by reference: a repeat gets the record as first made, and no new callback.
- Callbacks: due `callback_delay` (plus jitter) after the request; a payment or refund
  takes its final status when its callback is first sent; failed deliveries are retried;
  a reset drops every pending callback and waits for those in flight.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from .config import SandboxConfig
from .methods import INVALID_DETAILS_REASON, METHODS, details_seen, details_valid
from .scheduler import CALLBACK_TIMEOUT_SECONDS, CALLBACK_WORKERS, CallbackSender, Scheduler, retry_delay
from .soap import payment_notification, refund_notification
from .store import Payment, Record, Refund, Store

logger = logging.getLogger(__name__)

MODES = ("ok", "down", "error", "timeout", "decline", "flaky")
# CONTRACT §11: what a payment asks of the customer before the gateway can answer.
ACTIONS = ("none", "redirect", "redirect_post", "display_code")
# The customer's choices on the challenge page, as a callback's status and reason.
CUSTOMER_CHOICES = {
    "approve": ("completed", None),
    "decline": ("failed", "declined"),
    "cancel": ("failed", "cancelled"),
}
ACTION_CODE_SECONDS = 900
CALLBACK_CHOICES = ("completed", "failed", "none")
PAYMENT_TYPES = ("deposit", "withdrawal")
DECLINE_REASON = "insufficient_funds"
CALLBACK_FAILURE_REASON = "rejected_by_bank"
# Why a refund is declined: by the `decline` mode or `decline_rate`; by what the gateway knows.
REFUND_DECLINE_REASON = "refund_rejected"
UNKNOWN_PAYMENT = "unknown_payment"
PAYMENT_NOT_REFUNDABLE = "payment_not_refundable"  # the payment was declined or failed
CURRENCY_MISMATCH = "currency_mismatch"
AMOUNT_EXCEEDS_PAYMENT = "amount_exceeds_payment"  # more than what remains of the payment
# The callback outcome set by the mode ("completed" | "failed") as a refund's final status.
REFUND_CALLBACK_STATUS = {"completed": "succeeded", "failed": "failed"}

# With duplicate_callbacks the second copy trails the first by this much.
DUPLICATE_CALLBACK_GAP_SECONDS = 0.1
# The largest `callback_jitter` accepted: a random extra delay per callback, to reorder deliveries.
MAX_CALLBACK_JITTER_SECONDS = 60.0
# The largest `latency_ms` accepted: the wait before every answer of the gateway protocol.
MAX_LATENCY_MS = 60_000
RESET_DRAIN_SECONDS = CALLBACK_TIMEOUT_SECONDS + 1.0  # a reset waits this long for deliveries in flight


class BadRequest(ValueError):
    """The request is malformed: 400 (JSON) or a `Client.BadRequest` fault (SOAP)."""


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_number(value: object) -> bool:
    # bool is an int subclass: refuse `true` as a number.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _rate(changes: Mapping[str, Any], name: str, current: float) -> float:
    value = changes.get(name, current)
    if not _is_number(value) or not 0.0 <= value <= 1.0:  # the comparison also refuses NaN
        raise ValueError(f"{name} must be a number between 0 and 1")
    return float(value)


@dataclass(frozen=True, slots=True)
class ModeSettings:
    mode: str = "ok"
    failure_rate: float = 0.3  # in `flaky` mode: the share of requests answered 503
    decline_rate: float = 0.0  # in `ok` mode: the share of payments and refunds declined
    latency_ms: int = 0  # every answer of the gateway protocol (not /_sandbox/) waits this long first
    callback: str = "completed"
    duplicate_callbacks: bool = False
    # Each callback waits callback_delay + uniform(0, callback_jitter): deliveries then arrive out of order.
    callback_jitter: float = 0.0
    action: str = "none"

    def updated(self, changes: Mapping[str, Any]) -> ModeSettings:
        """A copy with `changes` applied; ValueError names the first invalid key or value."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        mode = changes.get("mode", self.mode)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        failure_rate = _rate(changes, "failure_rate", self.failure_rate)
        decline_rate = _rate(changes, "decline_rate", self.decline_rate)
        latency = changes.get("latency_ms", self.latency_ms)
        if (
            not _is_number(latency)
            or not 0 <= latency <= MAX_LATENCY_MS  # also refuses NaN
            or not float(latency).is_integer()
        ):
            raise ValueError(f"latency_ms must be a whole number of milliseconds between 0 and {MAX_LATENCY_MS}")
        callback = changes.get("callback", self.callback)
        if callback not in CALLBACK_CHOICES:
            raise ValueError(f"callback must be one of {', '.join(CALLBACK_CHOICES)}")
        duplicate = changes.get("duplicate_callbacks", self.duplicate_callbacks)
        if not isinstance(duplicate, bool):
            raise ValueError("duplicate_callbacks must be true or false")
        jitter = changes.get("callback_jitter", self.callback_jitter)
        if not _is_number(jitter) or not 0.0 <= jitter <= MAX_CALLBACK_JITTER_SECONDS:  # also refuses NaN
            raise ValueError(
                f"callback_jitter must be a number of seconds between 0 and {MAX_CALLBACK_JITTER_SECONDS:g}"
            )
        action = changes.get("action", self.action)
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
        return ModeSettings(
            action=action,
            mode=mode,
            failure_rate=failure_rate,
            decline_rate=decline_rate,
            latency_ms=int(latency),
            callback=callback,
            duplicate_callbacks=duplicate,
            callback_jitter=float(jitter),
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _parse_fields(raw: Mapping[str, object], names: Mapping[str, str]) -> dict[str, str]:
    """Validate `raw` (wire name -> value) into field name -> value; `names` maps wire names to field names.

    Every field is a required non-empty string (an amount may be a JSON number), `amount` a
    positive decimal and `callback_url` an http(s) URL.
    """
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
    callback = urlsplit(values["callback_url"])
    if callback.scheme not in ("http", "https") or not callback.netloc:
        raise BadRequest("callback_url must be an http(s) URL")
    return values


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
    payment_method: str = ""
    payment_details: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, raw: Mapping[str, object], names: Mapping[str, str]) -> PaymentFields:
        """Validate `raw` (wire name -> value); `names` maps wire names to field names."""
        values = _parse_fields(raw, names)
        if values["type"] not in PAYMENT_TYPES:
            raise BadRequest(f"type must be one of {', '.join(PAYMENT_TYPES)}")
        return cls(**values)  # type: ignore[arg-type]  # text fields only: the details come by with_method

    def with_method(self, method: object, details: dict[str, str] | None) -> PaymentFields:
        """The request's payment method and details (CONTRACT §12), both optional."""
        if method is None or method == "":
            return self
        if not isinstance(method, str) or method not in METHODS:
            raise BadRequest(f"payment_method must be one of {', '.join(METHODS)}")
        if details is None:
            raise BadRequest("payment_details must be an object of strings")
        return dataclasses.replace(self, payment_method=method, payment_details=details)

    @property
    def details_invalid(self) -> bool:
        return bool(self.payment_method) and not details_valid(self.payment_method, self.payment_details)


@dataclass(frozen=True, slots=True)
class RefundFields:
    """A refund request's content, whichever protocol carried it."""

    reference: str  # the merchant's refund id
    payment_id: str  # this gateway's id of the payment to refund
    amount: str
    currency: str
    callback_url: str

    @classmethod
    def parse(cls, raw: Mapping[str, object], names: Mapping[str, str]) -> RefundFields:
        """Validate `raw` (wire name -> value); `names` maps wire names to field names."""
        return cls(**_parse_fields(raw, names))


def judge_refund(fields: RefundFields, payment: Payment | None, refunded: Decimal) -> str | None:
    """Why the gateway declines this refund (None: it does not), given its payment and what
    that payment's earlier refunds (not declined, not failed) already hold."""
    if payment is None:
        return UNKNOWN_PAYMENT
    if payment.status in ("declined", "failed"):
        return PAYMENT_NOT_REFUNDABLE
    if fields.currency != payment.currency:
        return CURRENCY_MISMATCH
    if refunded + Decimal(fields.amount) > Decimal(payment.amount):
        return AMOUNT_EXCEEDS_PAYMENT
    return None


@dataclass(frozen=True, slots=True)
class CallbackJob:
    kind: type[Record]  # Payment | Refund
    reference: str
    event_id: str
    status: str  # a payment's completed | failed, a refund's succeeded | failed
    reason: str | None
    generation: int  # the gateway's reset generation when scheduled: a reset drops older jobs
    attempt: int = 1


def _action(kind: str, payment_id: str, base_url: str) -> dict[str, Any]:
    """What a new payment asks of the customer in this action mode."""
    url = f"{base_url}/challenge/{payment_id}"
    if kind == "redirect":
        return {"type": "redirect", "url": url, "method": "GET", "fields": {}}
    if kind == "redirect_post":
        # 3-D Secure style: the challenge request travels in a form field.
        return {"type": "redirect", "url": url, "method": "POST", "fields": {"creq": uuid.uuid4().hex}}
    expires = datetime.now(UTC).timestamp() + ACTION_CODE_SECONDS
    expires_at = datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    # A Pix-like "copy and paste" code: what a banking app reads from the QR image.
    code = f"00020126580014br.gov.bcb.pix0136{payment_id[4:40]}5204000053039865802BR6304ABCD"
    return {"type": "display_code", "code": code, "expires_at": expires_at}


class SandboxGateway:
    """What the gateway does, independent of the wire protocol."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = Store(config.state_file)
        self.stopping = threading.Event()
        self._mode = ModeSettings()
        self._lock = threading.Lock()
        self._generation = 0
        self._scheduler = Scheduler(CALLBACK_WORKERS, name=f"sandbox-{config.code}-callbacks")
        self._sender = CallbackSender(config.webhook_secret)
        # Callbacks that were due when a previous process (same state file) stopped.
        for kind in (Payment, Refund):
            for record in self.store.all(kind):
                if record.pending_callback is not None:
                    self._schedule_callback(kind, record.reference, record.pending_callback, record.duplicate_callback)

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
        """Forget every record and pending callback, and go back to the default settings.

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

    @staticmethod
    def declines(mode: ModeSettings) -> bool:
        """Whether to decline a new request: every one in `decline` mode, a share `decline_rate` in `ok` mode."""
        if mode.mode == "decline":
            return True
        return mode.mode == "ok" and random.random() < mode.decline_rate  # nosec B311  # simulated declines

    # Payments

    def submit(
        self, fields: PaymentFields, mode: ModeSettings, *, return_url: str | None = None, base_url: str = ""
    ) -> tuple[Payment, bool]:
        """Record a payment request, or count a repeat of its reference; schedule its callback.

        A repeat gets the payment as first recorded (same id, same decline) and no new callback.
        With an `action` mode the payment waits for the customer (`action_required`): its
        callback goes when the customer acts (`customer_acts`).
        """
        invalid = fields.details_invalid
        declined = invalid or self.declines(mode)
        payment_id = f"pay_{uuid.uuid4().hex}"
        action = None if declined or mode.action == "none" else _action(mode.action, payment_id, base_url)
        callback = None if declined or action is not None or mode.callback == "none" else mode.callback
        payment = Payment(
            # Only which details arrived, with their last four characters, is kept.
            **{**dataclasses.asdict(fields), "payment_details": details_seen(fields.payment_details)},
            payment_id=payment_id,
            status="declined" if declined else ("action_required" if action else "accepted"),
            reason=(INVALID_DETAILS_REASON if invalid else DECLINE_REASON) if declined else None,
            received_at=_utc_now(),
            pending_callback=callback,
            duplicate_callback=callback is not None and mode.duplicate_callbacks,
            return_url=return_url,
            action=action,
        )
        stored, created = self.store.record(payment)
        if created and callback is not None:
            self._schedule_callback(Payment, stored.reference, callback, stored.duplicate_callback)
        return stored, created

    def lookup(self, reference: str) -> Payment | None:
        return self.store.get(Payment, reference)

    def payment_by_id(self, payment_id: str) -> Payment | None:
        return self.store.payment_by_id(payment_id)

    def customer_acts(self, payment_id: str, choice: str) -> Payment | None:
        """The customer approved, declined or cancelled (or paid a displayed code: approve).

        The payment takes its final status at once (a look-up reports it) and its callback is
        sent straight away, unless the mode says `callback: none`. None for an unknown payment;
        a payment no longer waiting is returned unchanged.
        """
        payment = self.store.payment_by_id(payment_id)
        if payment is None or payment.status != "action_required":
            return payment
        status, reason = CUSTOMER_CHOICES[choice]
        finished = self.store.finish(Payment, payment.reference, status, reason)
        if self.mode.callback != "none":
            self._schedule_callback(Payment, payment.reference, status, False, reason=reason, delay=0.0)
        return finished

    # Refunds

    def submit_refund(self, fields: RefundFields, mode: ModeSettings) -> tuple[Refund, bool]:
        """Record a refund request, or count a repeat of its reference; schedule its callback.

        A new refund is declined when the mode says so, or when its payment is unknown, was
        not paid, is in another currency, or has not enough left; that is judged under the
        store's lock, so concurrent refunds of one payment never exceed it together. A repeat
        gets the refund as first recorded and no new callback.
        """
        mode_declines = self.declines(mode)
        callback = None if mode.callback == "none" else REFUND_CALLBACK_STATUS[mode.callback]

        def judge(payment: Payment | None, refunded: Decimal) -> str | None:
            return judge_refund(fields, payment, refunded) or (REFUND_DECLINE_REASON if mode_declines else None)

        refund = Refund(
            **dataclasses.asdict(fields),
            refund_id=f"rfd_{uuid.uuid4().hex}",
            status="accepted",
            reason=None,
            received_at=_utc_now(),
            pending_callback=callback,
            duplicate_callback=callback is not None and mode.duplicate_callbacks,
        )
        stored, created = self.store.record_refund(refund, judge)
        if created and stored.pending_callback is not None:
            self._schedule_callback(Refund, stored.reference, stored.pending_callback, stored.duplicate_callback)
        return stored, created

    def lookup_refund(self, reference: str) -> Refund | None:
        return self.store.get(Refund, reference)

    # Callbacks

    def _schedule_callback(
        self,
        kind: type[Record],
        reference: str,
        status: str,
        duplicate: bool,
        *,
        reason: str | None = None,
        delay: float | None = None,
    ) -> None:
        with self._lock:
            generation = self._generation
        job = CallbackJob(
            kind=kind,
            reference=reference,
            event_id=f"evt_{uuid.uuid4().hex}",
            status=status,
            reason=reason or (CALLBACK_FAILURE_REASON if status == "failed" else None),
            generation=generation,
        )
        # With callback_jitter each delivery (a duplicate copy too) draws its own extra delay,
        # so callbacks of different payments, and the two copies of one, arrive in any order.
        jitter = self.mode.callback_jitter
        if delay is None:
            delay = self.config.callback_delay + (random.uniform(0.0, jitter) if jitter else 0.0)  # nosec B311
        self._scheduler.call_later(delay, partial(self._deliver, job))
        if duplicate:
            extra = random.uniform(0.0, jitter) if jitter else 0.0  # nosec B311  # simulated reordering
            self._scheduler.call_later(
                self.config.callback_delay + DUPLICATE_CALLBACK_GAP_SECONDS + extra, partial(self._deliver, job)
            )

    def callback_body(self, job: CallbackJob, record: Record) -> tuple[bytes, str]:
        """The notification body and its content type, in this gateway's format."""
        if isinstance(record, Refund):
            if self.config.format == "json":
                body: dict[str, Any] = {
                    "event_id": job.event_id,
                    "type": "refund",
                    "refund_id": record.refund_id,
                    "reference": job.reference,
                    "status": job.status,
                    "reason": job.reason,
                }
                return json.dumps(body).encode(), "application/json"
            xml = refund_notification(
                event_id=job.event_id,
                refund_id=record.refund_id,
                reference=job.reference,
                status=job.status,
                reason=job.reason,
            )
            return xml, "application/xml"
        if not isinstance(record, Payment):
            raise TypeError(f"a callback for a {type(record).__name__}, neither a payment nor a refund")
        if self.config.format == "json":
            body = {
                "event_id": job.event_id,
                "payment_id": record.payment_id,
                "reference": job.reference,
                "status": job.status,
                "reason": job.reason,
            }
            return json.dumps(body).encode(), "application/json"
        xml = payment_notification(
            event_id=job.event_id,
            payment_id=record.payment_id,
            reference=job.reference,
            status=job.status,
            reason=job.reason,
        )
        return xml, "application/xml"

    def _deliver(self, job: CallbackJob) -> None:
        with self._lock:
            if job.generation != self._generation:
                return
        # The payment or refund finishes when its callback is first sent, whether or not delivery
        # works: a look-up then reports the final status, as a real gateway's would.
        record = self.store.finish(job.kind, job.reference, job.status, job.reason)
        if record is None:
            return
        body, content_type = self.callback_body(job, record)
        delivered, outcome = self._sender.post(record.callback_url, body, content_type)
        what = "refund callback" if job.kind is Refund else "callback"
        summary = f"{what} {job.event_id} ref={job.reference} {job.status} try {job.attempt}: {outcome}"
        delay = retry_delay(job.attempt)
        if delivered:
            self.store.count_delivery(job.kind, job.reference)
            logger.info("sandbox %s: %s", self.config.code, summary)
        elif delay is None or self.stopping.is_set():
            logger.warning("sandbox %s: %s; giving up", self.config.code, summary)
        else:
            logger.info("sandbox %s: %s; retrying in %.1fs", self.config.code, summary, delay)
            retry = dataclasses.replace(job, attempt=job.attempt + 1)
            self._scheduler.call_later(delay, partial(self._deliver, retry))

    def close(self) -> None:
        self.stopping.set()
        self._scheduler.stop()
