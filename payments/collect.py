"""Details collected by Paygate on the pay page (CONTRACT §12, "Collected by Paygate").

A deposit with `return_url` and a collectable method (card, bank account) but no
`payment_details` waits, `pending` and sent to no gateway, until the customer types the details
into the pay page's form. The wait is recorded on the transaction's `action`:
`{"type": "collect_details", "deadline": <unix time>}`; once the details are in, it becomes
`{"type": "collect_details", "collected_at": <unix time>}` and the routing deadline counts from
then. Nobody typing within PAYGATE_ACTION_DEADLINE_SECONDS: the recovery sweep finds the
transaction due at the deadline and it fails `expired`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .actions import ACTION_COLLECT, awaiting_details, collect_deadline
from .methods import method_details_errors
from .models import FailureReason, Transaction, TransactionStatus
from .services import transaction_lock, transaction_publish, transaction_save, transaction_transition


def collect_expire_if_due(txn: Transaction, *, now: datetime) -> bool:
    """Under the row lock: True when the transaction still waits for its details (nothing to route);
    past the deadline it is failed `expired` first."""
    if not awaiting_details(txn):
        return False
    deadline = collect_deadline(txn)
    if deadline is not None and now >= deadline:
        transaction_transition(txn, to=TransactionStatus.FAILED, failure_reason=FailureReason.EXPIRED)
    return True


@dataclass(frozen=True, slots=True)
class CollectResult:
    """`errors` by field (the details were refused, nothing changed); `gone` when the transaction no
    longer takes details (taken already, final, past the deadline); else accepted."""

    errors: dict[str, list[str]] = field(default_factory=dict)
    gone: bool = False

    @property
    def accepted(self) -> bool:
        return not self.errors and not self.gone


def transaction_details_collect(
    *, transaction_id: str, details: dict[str, str], save: bool, now: datetime | None = None
) -> CollectResult:
    """Store the details the customer typed, exactly as API-given ones (encrypted), and start processing.

    Validated by the API's rules (payments.methods). `save` is the customer's tick; it counts only
    when the merchant offered it (`save_payment_method: true` on the deposit).
    """
    now = now or timezone.now()
    with transaction.atomic():
        txn = transaction_lock(transaction_id)
        if not awaiting_details(txn):
            return CollectResult(gone=True)
        deadline = collect_deadline(txn)
        if deadline is not None and now >= deadline:
            return CollectResult(gone=True)
        errors = method_details_errors(txn.payment_method, details, today=now.date())
        if errors:
            return CollectResult(errors=errors)
        stored: Any = dict(details)  # the field is typed as itself (fernet_fields has no hints)
        txn.payment_details = stored
        txn.save_payment_method = bool(txn.save_payment_method and save)
        txn.action = {"type": ACTION_COLLECT, "collected_at": now.timestamp()}
        txn.next_check_at = now + timedelta(seconds=settings.PAYGATE_SWEEP_GRACE_SECONDS)
        transaction_save(
            txn, fields=["payment_details", "save_payment_method", "action", "next_check_at", "updated_at"]
        )
        txn_id = txn.pk
        transaction.on_commit(lambda: transaction_publish(txn_id), robust=True)
    return CollectResult()
