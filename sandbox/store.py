"""What a sandbox remembers: its records by kind and reference, optionally saved to a JSON file.

Each kind of record (today only `Payment`) is a `Record` subclass whose `KIND` names its
table and its key in the state file (`{"payments": [...]}`). A record is created once per
reference (a repeat only counts the request), starts `accepted` or `declined`, and moves
once from `accepted` to its final status. Every method returns copies, so callers never
read a record while another thread changes it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast


@dataclass(slots=True, kw_only=True)
class Record:
    """What every kind of record shares: the merchant's reference, a status, callback bookkeeping."""

    KIND: ClassVar[str]

    reference: str
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

    @property
    def lookup_status(self) -> str:
        """accepted | completed | failed: a decline is a failed record to a look-up."""
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


# Every kind the store keeps, each in its own table and under its own key in the state file.
RECORD_KINDS: tuple[type[Record], ...] = (Payment,)

R = TypeVar("R", bound=Record)


class Store:
    """Records by kind and reference, guarded by a lock; with a state file, saved after each change."""

    def __init__(self, state_file: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._tables: dict[str, dict[str, Record]] = {kind.KIND: {} for kind in RECORD_KINDS}
        self._state_file = state_file
        if state_file is not None and state_file.exists():
            self._tables = self._load(state_file)

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
            self._save()
            return dataclasses.replace(record), True

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
            if record.status == "accepted":
                record.status = status
                record.reason = reason
                record.pending_callback = None
                self._save()
            return cast(R, dataclasses.replace(record))

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
            self._save()
