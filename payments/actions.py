"""Customer actions (CONTRACT §11): the pay page's URLs and a transaction's `next_action`.

The gateway's action is stored on the transaction as it was parsed (`Transaction.action`):
`{"type": "redirect", "url", "method", "fields"}` or `{"type": "display_code", "code", "expires_at"}`.
The merchant never sees the gateway's URL: `next_action.url` is always Paygate's own pay page,
which forwards the customer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

from core.paytoken import pay_token_make

from .methods import COLLECTABLE_METHODS
from .models import FINAL_STATUSES, Transaction, TransactionStatus

ACTION_REDIRECT = "redirect"
ACTION_DISPLAY_CODE = "display_code"
# The token outlives the action by this much, so that a customer coming back late still lands
# on a page that says how the payment ended.
PAY_TOKEN_GRACE_SECONDS = 3600


def action_expires_at(txn: Transaction) -> datetime:
    """By then the transaction is final: routed within the routing deadline, then acted on within the action's."""
    return txn.created_at + timedelta(
        seconds=settings.PAYGATE_NO_GATEWAY_DEADLINE_SECONDS + settings.PAYGATE_ACTION_DEADLINE_SECONDS
    )


def pay_token(txn: Transaction) -> str:
    expires = action_expires_at(txn) + timedelta(seconds=PAY_TOKEN_GRACE_SECONDS)
    return pay_token_make(transaction_id=str(txn.pk), expires_at=int(expires.timestamp()))


def pay_page_url(txn: Transaction) -> str:
    return f"{settings.PAYGATE_PUBLIC_URL}/pay/{txn.pk}?t={pay_token(txn)}"


def pay_return_url(txn: Transaction) -> str:
    """What the gateway sends the customer back to: the return endpoint, which looks the attempt up."""
    return f"{settings.PAYGATE_PUBLIC_URL}/pay/{txn.pk}/return?t={pay_token(txn)}"


def needs_pay_page(txn: Transaction) -> bool:
    return txn.status not in FINAL_STATUSES and bool(txn.return_url or txn.action)


def next_action_representation(txn: Transaction, *, iso: Any) -> dict[str, Any] | None:
    """`next_action` as the API, events and webhooks show it; None once final or when there is none."""
    if not needs_pay_page(txn):
        return None
    action = txn.action or {}
    expires_at = iso(action_expires_at(txn))
    if action.get("type") == ACTION_DISPLAY_CODE:
        return {
            "type": ACTION_DISPLAY_CODE,
            "code": action.get("code", ""),
            "url": pay_page_url(txn),
            "expires_at": action.get("expires_at") or expires_at,
        }
    return {"type": ACTION_REDIRECT, "url": pay_page_url(txn), "expires_at": expires_at}


# --- Details collected on the pay page (CONTRACT §12; services in payments/collect.py) ----------------

ACTION_COLLECT = "collect_details"


def collect_action_new(*, now: datetime) -> dict[str, Any]:
    """The `action` of a new deposit whose details the customer will type."""
    deadline = now + timedelta(seconds=settings.PAYGATE_ACTION_DEADLINE_SECONDS)
    return {"type": ACTION_COLLECT, "deadline": deadline.timestamp()}


def collects_details(*, transaction_type: str, method: str, details: dict[str, Any], return_url: str) -> bool:
    """True for a deposit that Paygate collects the details of (validated by the API before)."""
    return transaction_type == "deposit" and bool(return_url) and method in COLLECTABLE_METHODS and not details


def awaiting_details(txn: Transaction) -> bool:
    """The customer has not typed the details yet (whatever the deadline)."""
    action = txn.action or {}
    return txn.status == TransactionStatus.PENDING and action.get("type") == ACTION_COLLECT and "deadline" in action


def collect_deadline(txn: Transaction) -> datetime | None:
    action = txn.action or {}
    if action.get("type") != ACTION_COLLECT or "deadline" not in action:
        return None
    return datetime.fromtimestamp(float(action["deadline"]), tz=UTC)


def routing_started_at(txn: Transaction) -> datetime:
    """Where the routing deadline counts from: the details' arrival for a collected deposit, else its creation."""
    action = txn.action or {}
    if action.get("type") == ACTION_COLLECT and "collected_at" in action:
        return datetime.fromtimestamp(float(action["collected_at"]), tz=UTC)
    return txn.created_at
