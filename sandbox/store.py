"""What a sandbox remembers: its records by kind and reference, optionally saved to a JSON file.

Each kind of record (`Payment`, `Refund`) is a `Record` subclass whose `KIND` names its
table and its key in the state file (`{"payments": [...], "refunds": [...]}`). A record is
created once per reference (a repeat only counts the request), starts `accepted` or
`declined`, and moves once from `accepted` to its final status. Every method returns
copies, so callers never read a record while another thread changes it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast


@dataclass(slots=True, kw_only=True)
class Record:
    """What every kind of record shares: the merchant's reference, a status, callback bookkeeping."""

    KIND: ClassVar[str]

    reference: str
    callback_url: str
    status: str  # accepted | declined, then a payment's completed | failed, a refund's succeeded | failed
    reason: str | None
    received_at: str
    requests: int = 1
    # The outcome a scheduled, not yet sent callback will report (kept so a restart with a
    # state file can reschedule it); None once sent, or when no callback is due.
    pending_callback: str | None = None
    duplicate_callback: bool = False
    callbacks_delivered: int = 0

    @property
    def lookup_status(self) -> str:
        """accepted or the final status: a decline is a failed record to a look-up."""
        return "failed" if self.status == "declined" else self.status


@dataclass(slots=True, kw_only=True)
class Payment(Record):
    KIND: ClassVar[str] = "payments"

    payment_id: str
    transaction_id: str
    type: str
    amount: str
    currency: str
    country: str
    customer_id: str
    # CONTRACT §11: where the customer goes after an action, and the action asked of them.
    return_url: str | None = None
    action: dict[str, Any] | None = None
    # CONTRACT §12: the method, and which details arrived, each with its last four characters only.
    payment_method: str = ""
    payment_details: dict[str, str] = field(default_factory=dict)

    def listing(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "payment_id": self.payment_id,
            "return_url": self.return_url,
            "action": self.action,
            "transaction_id": self.transaction_id,
            "type": self.type,
            "amount": self.amount,
            "currency": self.currency,
            "country": self.country,
            "customer_id": self.customer_id,
            "payment_method": self.payment_method or None,
            "payment_details": dict(self.payment_details),
            "status": self.status,
            "reason": self.reason,
            "received_at": self.received_at,
            "requests": self.requests,
            "callbacks_delivered": self.callbacks_delivered,
        }


@dataclass(slots=True, kw_only=True)
class Refund(Record):
    """A refund of (part of) a payment, named by the gateway's `payment_id`."""

    KIND: ClassVar[str] = "refunds"

    refund_id: str
    payment_id: str
    amount: str
    currency: str

    @property
    def counts_against_payment(self) -> bool:
        """Whether its amount is taken from what remains refundable: unless declined or failed."""
        return self.status not in ("declined", "failed")

    def listing(self) -> dict[str, Any]:
        return {
            "kind": "refund",
            "reference": self.reference,
            "refund_id": self.refund_id,
            "payment_id": self.payment_id,
            "amount": self.amount,
            "currency": self.currency,
            "status": self.status,
            "reason": self.reason,
            "received_at": self.received_at,
            "requests": self.requests,
            "callbacks_delivered": self.callbacks_delivered,
        }


# Every kind the store keeps, each in its own table and under its own key in the state file.
RECORD_KINDS: tuple[type[Record], ...] = (Payment, Refund)

# Given a new refund's payment (None if unknown) and what that payment's earlier refunds
# still hold, the reason to decline the refund, or None to accept it.
RefundJudge = Callable[[Payment | None, Decimal], str | None]

R = TypeVar("R", bound=Record)


class Store:
    """Records by kind and reference, guarded by a lock; with a state file, saved after each change."""

    def __init__(self, state_file: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._tables: dict[str, dict[str, Record]] = {kind.KIND: {} for kind in RECORD_KINDS}
        self._state_file = state_file
        if state_file is not None and state_file.exists():
            self._tables = self._load(state_file)
        # payment_id -> reference: a refund names its payment by the gateway's id.
        self._payment_references = {
            cast(Payment, payment).payment_id: reference for reference, payment in self._tables[Payment.KIND].items()
        }

    @staticmethod
    def _load(path: Path) -> dict[str, dict[str, Record]]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not any(kind.KIND in data for kind in RECORD_KINDS):
                raise ValueError(f"expected an object with {' or '.join(kind.KIND for kind in RECORD_KINDS)}")
            # A kind missing from the file (one added since it was written) starts empty.
            tables: dict[str, dict[str, Record]] = {}
            for kind in RECORD_KINDS:
                records = [kind(**item) for item in data.get(kind.KIND, [])]
                tables[kind.KIND] = {record.reference: record for record in records}
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"state file {path} is unreadable: {exc!r}") from exc
        return tables

    def _save(self) -> None:
        """Write the state file atomically (temp file + rename). The caller holds the lock."""
        if self._state_file is None:
            return
        directory = self._state_file.parent
        directory.mkdir(parents=True, exist_ok=True)
        data = {kind: [dataclasses.asdict(record) for record in table.values()] for kind, table in self._tables.items()}
        content = json.dumps(data, indent=1)
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

    def record(self, record: R) -> tuple[R, bool]:
        """Store `record` unless its reference is known: then count the repeat on the existing one.

        Returns (the stored record, whether it was created now).
        """
        table = self._tables[record.KIND]
        with self._lock:
            existing = table.get(record.reference)
            if existing is not None:
                existing.requests += 1
                self._save()
                return cast(R, dataclasses.replace(existing)), False
            table[record.reference] = dataclasses.replace(record)
            if isinstance(record, Payment):
                self._payment_references[record.payment_id] = record.reference
            self._save()
            return dataclasses.replace(record), True

    def record_refund(self, refund: Refund, judge: RefundJudge) -> tuple[Refund, bool]:
        """Like `record`; a new refund is first judged against its payment, under the same lock.

        So two refunds arriving together can never both take what remains of one payment.
        `judge`'s reason, if any, stores the refund as declined.
        """
        with self._lock:
            existing = self._tables[Refund.KIND].get(refund.reference)
            if existing is not None:
                existing.requests += 1
                self._save()
                return cast(Refund, dataclasses.replace(existing)), False
            payment = self._payment_by_id(refund.payment_id)
            refunded = sum(
                (
                    Decimal(other.amount)
                    for other in cast("list[Refund]", list(self._tables[Refund.KIND].values()))
                    if other.payment_id == refund.payment_id and other.counts_against_payment
                ),
                Decimal(0),
            )
            reason = judge(None if payment is None else dataclasses.replace(payment), refunded)
            stored = refund if reason is None else dataclasses.replace(refund, status="declined", reason=reason)
            if reason is not None:
                stored.pending_callback = None
                stored.duplicate_callback = False
            self._tables[Refund.KIND][refund.reference] = dataclasses.replace(stored)
            self._save()
            return dataclasses.replace(stored), True

    def _payment_by_id(self, payment_id: str) -> Payment | None:
        """The caller holds the lock."""
        reference = self._payment_references.get(payment_id)
        return None if reference is None else cast(Payment, self._tables[Payment.KIND][reference])

    def get(self, kind: type[R], reference: str) -> R | None:
        with self._lock:
            record = self._tables[kind.KIND].get(reference)
            return None if record is None else cast(R, dataclasses.replace(record))

    def finish(self, kind: type[R], reference: str, status: str, reason: str | None) -> R | None:
        """Move an accepted record to its final `status`; None if the reference is unknown."""
        with self._lock:
            record = self._tables[kind.KIND].get(reference)
            if record is None:
                return None
            if record.status in ("accepted", "action_required"):
                record.status = status
                record.reason = reason
                record.pending_callback = None
                self._save()
            return cast(R, dataclasses.replace(record))

    def payment_by_id(self, payment_id: str) -> Payment | None:
        with self._lock:
            payment = self._payment_by_id(payment_id)
            return None if payment is None else dataclasses.replace(payment)

    def count_delivery(self, kind: type[Record], reference: str) -> None:
        with self._lock:
            record = self._tables[kind.KIND].get(reference)
            if record is not None:
                record.callbacks_delivered += 1
                self._save()

    def all(self, kind: type[R]) -> list[R]:
        with self._lock:
            return [cast(R, dataclasses.replace(record)) for record in self._tables[kind.KIND].values()]

    def clear(self) -> None:
        with self._lock:
            for table in self._tables.values():
                table.clear()
            self._payment_references.clear()
            self._save()
