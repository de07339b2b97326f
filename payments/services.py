"""Writes: creating transactions (with idempotency) and moving them through the state machine.

This module owns a transaction's status. A change happens only on a row locked by
`transaction_lock`, is checked by `transaction_transition` and written by `transaction_save`,
which appends the change's event in the same database transaction: no status ever changes
without its event (a test lists every writer of `Transaction.status`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.db import CurrentTransactionId
from core.errors import ApplicationError, ValidationFailed
from core.fingerprint import fingerprint as keyed_fingerprint
from core.fingerprint import fingerprint_matches
from core.localcache import LocalCache
from core.logs import bind
from gateways.errors import NoRoute
from gateways.selectors import route_list

from .actions import ACTION_COLLECT, collect_action_new, collects_details
from .errors import IdempotencyConflict
from .masking import has_sensitive_auth, without_sensitive_auth
from .methods import WITHDRAWAL_METHODS, saved_method_find
from .metrics import CUSTOMER_ACTIONS, PAYMENT_DETAILS_PURGED, TRANSACTIONS_CREATED, TRANSACTIONS_FINISHED
from .models import (
    ALLOWED_TRANSITIONS,
    CUSTOMERS_CACHE,
    FINAL_STATUSES,
    TRANSACTION_PIPELINE_FIELDS,
    ApiClient,
    Attempt,
    Customer,
    Event,
    EventType,
    FailureReason,
    Refund,
    Transaction,
    TransactionStatus,
)
from .pipeline import STATUS_AT_LOCK as _STATUS_AT_LOCK
from .pipeline import insert_or_replay, status_lock_note, task_publish
from .representations import transaction_representation
from .signals import event_recorded

logger = logging.getLogger(__name__)

# A customer never changes once written: the row is cached per process (deletions invalidate it).
_customers: LocalCache[Customer] = LocalCache(CUSTOMERS_CACHE)


class InvalidTransition(ApplicationError):
    code = "invalid_transition"


@dataclass(frozen=True, slots=True)
class TransactionInput:
    type: str
    customer_id: str
    country: str
    amount: Decimal
    currency: str
    payment_details: dict[str, Any]
    metadata: dict[str, Any]
    # CONTRACT §11 (deposits): where the customer goes at the end, and the pay page's language.
    return_url: str = ""
    locale: str = ""
    payment_method: str = ""  # payments.methods.PaymentMethod; "" for free-form details
    payment_method_id: str = ""  # a saved method (pm_…) whose details to use
    save_payment_method: bool = False

    def canonical(self) -> bytes:
        """The same request, whatever its wire format, encodes the same."""
        fields: dict[str, Any] = {
            "type": self.type,
            "customer_id": self.customer_id,
            "country": self.country,
            "amount": format(self.amount.normalize(), "f"),
            "currency": self.currency,
            "payment_details": self.payment_details,
            "metadata": self.metadata,
        }
        # Only when given: a request without them hashes as it always has (stored fingerprints stay valid).
        for name in ("return_url", "locale", "payment_method", "payment_method_id"):
            if getattr(self, name):
                fields[name] = getattr(self, name)
        if self.save_payment_method:
            fields["save_payment_method"] = True
        return json.dumps(
            fields,
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        ).encode()

    def fingerprint(self) -> str:
        """Keyed (HMAC), never a plain hash: the request holds payment details."""
        return keyed_fingerprint(self.canonical())


@dataclass(frozen=True, slots=True)
class CreateResult:
    transaction: Transaction
    replayed: bool
    # The new transaction as the API shows it (its `transaction.created` event holds the same); None for a replay.
    shown: dict[str, Any] | None = None


def _replay(*, client: ApiClient, idempotency_key: str, data: TransactionInput) -> CreateResult | None:
    existing = Transaction.objects.filter(client=client, idempotency_key=idempotency_key).first()
    if existing is None:
        return None
    # Any of the fingerprint keys: a replay stays a replay across a key rotation.
    if not fingerprint_matches(data.canonical(), existing.request_hash):
        raise IdempotencyConflict(
            "This Idempotency-Key was already used with a different request.",
            fields={"idempotency_key": idempotency_key},
        )
    return CreateResult(transaction=existing, replayed=True)


PROCESS_TRANSACTION_TASK = "payments.process_transaction"


def transaction_publish(transaction_id: object, *, countdown: float | None = None) -> None:
    """Queue a transaction's processing. A failed publish is logged, not raised: the sweep republishes."""
    task_publish(
        PROCESS_TRANSACTION_TASK,
        transaction_id,
        countdown=countdown,
        log=logger,
        failure="could not publish processing; the recovery sweep will retry",
        key="transaction_id",
    )


def transaction_create(
    *, client: ApiClient, data: TransactionInput, idempotency_key: str | None = None
) -> CreateResult:
    """Store a transaction as `pending` and queue its processing once the row is committed.

    The idempotency key is enforced by a unique constraint: the INSERT is tried first, and
    only when it collides is the earlier transaction read and replayed. So concurrent
    requests with one key make one transaction, and a first request costs no extra read.
    """
    request_hash = data.fingerprint()
    requested = data
    if data.payment_method_id:
        resolved = _with_saved_method(client=client, data=data)
        if resolved is None:
            # A replay answers as the first request did, even if the method has been deleted since.
            replay = _replay(client=client, idempotency_key=idempotency_key, data=data) if idempotency_key else None
            if replay is not None:
                return replay
            raise ValidationFailed(
                "The request is invalid.", fields={"payment_method_id": ["No such payment method for this customer."]}
            )
        data = resolved
    routes = route_list(
        country_code=data.country,
        currency=data.currency,
        transaction_type=data.type,
        payment_method=data.payment_method,
    )
    if not routes:
        # A replay answers as the first request did, even if the route has gone since.
        if idempotency_key is not None:
            replay = _replay(client=client, idempotency_key=idempotency_key, data=data)
            if replay is not None:
                return replay
        by_method = f" by {data.payment_method}" if data.payment_method else ""
        raise NoRoute(
            f"No active gateway route for a {data.type}{by_method} in {data.currency} to {data.country}.",
            fields={
                "country": data.country,
                "currency": data.currency,
                **({"payment_method": data.payment_method} if data.payment_method else {}),
            },
        )
    return insert_or_replay(
        lambda: _insert(client=client, data=data, idempotency_key=idempotency_key, request_hash=request_hash),
        idempotency_key=idempotency_key,
        replay=lambda key: _replay(client=client, idempotency_key=key, data=requested),
    )


def _insert(
    *, client: ApiClient, data: TransactionInput, idempotency_key: str | None, request_hash: str
) -> CreateResult:
    """The new transaction, its `transaction.created` event, and a new customer, committed together."""
    customer_key = (client.pk, data.customer_id)
    customer = _customers.peek(customer_key)
    with transaction.atomic():
        if customer is None:
            # `transaction_create` found routes to the country, so it exists: its code is the foreign key.
            customer, _ = Customer.objects.get_or_create(
                client=client, reference=data.customer_id, defaults={"country_id": data.country}
            )
            # Kept once committed: a row rolled back with this block is never cached.
            committed = customer
            transaction.on_commit(lambda: _customers.put(customer_key, committed))
        txn = Transaction.objects.create(
            client=client,
            type=data.type,
            amount=data.amount,
            currency=data.currency,
            country_id=data.country,
            customer=customer,
            payment_details=data.payment_details,
            payment_method=data.payment_method,
            save_payment_method=data.save_payment_method,
            saved_method_id=data.payment_method_id,
            metadata=data.metadata,
            return_url=data.return_url,
            locale=data.locale,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            # If the publish below is lost, the recovery sweep picks it up from here.
            **{
                "next_check_at": timezone.now() + timedelta(seconds=settings.PAYGATE_SWEEP_GRACE_SECONDS),
                **_collect_fields(data),
            },
        )
        # A new transaction has no attempts yet: spare the response a query for them (through
        # Django's own prefetch cache, which its stubs do not declare).
        txn._prefetched_objects_cache = {  # type: ignore[attr-defined]
            "attempts": Attempt.objects.none(),
            "refunds": Refund.objects.none(),
        }
        shown = transaction_representation(txn, attempts=(), refunds=())
        event_append(client_id=client.pk, type=EventType.TRANSACTION_CREATED, transaction=txn, obj=shown)
        txn_id = txn.pk
        transaction.on_commit(lambda: transaction_publish(txn_id), robust=True)
    bind(transaction_id=txn.pk)
    TRANSACTIONS_CREATED.labels(type=txn.type, country=txn.country_id).inc()
    logger.info("transaction created", extra={"type": txn.type})
    return CreateResult(transaction=txn, replayed=False, shown=shown)


def _collect_fields(data: TransactionInput) -> dict[str, Any]:
    """A deposit whose details the customer types on the pay page (CONTRACT §12): it waits for them,
    due for the sweep at the typing deadline (then `expired`), instead of being routed now."""
    if not collects_details(
        transaction_type=data.type, method=data.payment_method, details=data.payment_details, return_url=data.return_url
    ):
        return {}
    action = collect_action_new(now=timezone.now())
    return {"action": action, "next_check_at": datetime.fromtimestamp(action["deadline"], tz=UTC)}


def _with_saved_method(*, client: ApiClient, data: TransactionInput) -> TransactionInput | None:
    """The request with its saved method's type and details; None when the customer has no such method
    or its type is not the one the request names."""
    saved = saved_method_find(
        client_id=client.pk, customer_reference=data.customer_id, method_id=data.payment_method_id
    )
    if saved is None or (data.payment_method and data.payment_method != saved.type):
        return None
    if data.type == "withdrawal" and saved.type not in WITHDRAWAL_METHODS:
        return None
    return dataclasses.replace(data, payment_method=saved.type, payment_details=dict(saved.details))


def transaction_transition(txn: Transaction, *, to: str, failure_reason: str | None = None, save: bool = True) -> None:
    """Move a transaction locked by `transaction_lock` to `to`, enforcing the state machine.

    With `save=False` the caller changes more fields and then calls `transaction_save`,
    which writes the change and its event.
    """
    if to not in ALLOWED_TRANSITIONS[txn.status]:
        raise InvalidTransition(f"A {txn.status} transaction cannot become {to}.")
    if to == TransactionStatus.FAILED and failure_reason not in FailureReason.values:
        raise InvalidTransition("A failed transaction needs a failure reason.")
    logger.info(
        "transaction %s -> %s%s",
        txn.status,
        to,
        f" ({failure_reason})" if failure_reason else "",
        extra={"transaction_id": str(txn.pk)},
    )
    txn.status = to
    txn.failure_reason = failure_reason if to == TransactionStatus.FAILED else None
    if to in FINAL_STATUSES:
        txn.finished_at = timezone.now()
        txn.next_check_at = None
        _drop_sensitive_auth(txn)
        transaction.on_commit(
            lambda: TRANSACTIONS_FINISHED.labels(
                type=txn.type,
                status=to,
                country=txn.country_id,
                gateway=txn.gateway.code if txn.gateway else "none",
                failure_reason=failure_reason or "",
            ).inc()
        )
        if txn.action and txn.action.get("type") != ACTION_COLLECT:
            # How a transaction that asked the customer to act ended: the funnel's last stage.
            # (Details typed on the pay page are not a gateway's action: not in the funnel.)
            stage = (
                "completed"
                if to == TransactionStatus.COMPLETED
                else failure_reason
                if failure_reason in (FailureReason.CANCELLED, FailureReason.EXPIRED)
                else "failed"
            )
            transaction.on_commit(lambda: customer_action_count(txn, stage=str(stage)))
    elif to == TransactionStatus.REQUIRES_ACTION:
        transaction.on_commit(lambda: customer_action_count(txn, stage="presented"))
    if save:
        transaction_save(txn)


def customer_action_count(txn: Transaction, *, stage: str) -> None:
    """One step of a customer action in the conversion funnel (`paygate_customer_actions_total`)."""
    CUSTOMER_ACTIONS.labels(
        gateway=txn.gateway.code if txn.gateway else "none", country=txn.country_id, stage=stage
    ).inc()


_EVENT_OF_STATUS = {
    TransactionStatus.PENDING: EventType.TRANSACTION_PENDING,
    TransactionStatus.REQUIRES_ACTION: EventType.TRANSACTION_REQUIRES_ACTION,
    TransactionStatus.PROCESSING: EventType.TRANSACTION_PROCESSING,
    TransactionStatus.COMPLETED: EventType.TRANSACTION_COMPLETED,
    TransactionStatus.FAILED: EventType.TRANSACTION_FAILED,
}


def transaction_save(
    txn: Transaction,
    *,
    fields: tuple[str, ...] | list[str] = TRANSACTION_PIPELINE_FIELDS,
    attempts: list[Attempt] | None = None,
) -> None:
    """Write a locked transaction's pipeline columns; a changed status appends its event with them.

    The only writer of `Transaction.status` after creation. Save the attempts first: the
    event shows the transaction with its attempts as they are now (`attempts`, when the
    caller holds all of them, in order; read otherwise).
    """
    at_lock = getattr(txn, _STATUS_AT_LOCK, None)
    if at_lock is None:
        raise RuntimeError("transaction_save needs a row locked by transaction_lock.")
    changed = txn.status != at_lock
    if changed and "status" not in fields:
        raise RuntimeError("A status change must be saved with its status column.")
    txn.save(update_fields=fields)
    if changed:
        if attempts is None:
            attempts = list(Attempt.objects.filter(transaction_id=txn.pk).select_related("gateway").order_by("number"))
        event_append(
            client_id=txn.client_id,
            type=_EVENT_OF_STATUS[TransactionStatus(txn.status)],
            transaction=txn,
            # Refunds exist only on a completed deposit, whose status never changes again.
            obj=transaction_representation(txn, attempts=attempts, refunds=()),
        )
        setattr(txn, _STATUS_AT_LOCK, txn.status)


def event_append(
    *,
    client_id: int,
    type: str,
    transaction: Transaction | None,
    obj: dict[str, Any],
    refund: Refund | None = None,
) -> Event:
    """Append an event inside the caller's database transaction (it commits or rolls back with the change).

    A refund's events also name its transaction, so the feed's `transaction` filter shows both.
    """
    if not _in_atomic_block():
        raise RuntimeError("An event is written in the same database transaction as its change.")
    event = Event.objects.create(
        client_id=client_id,
        type=type,
        transaction=transaction,
        refund=refund,
        data={"object": obj},
        txid=CurrentTransactionId(),
    )
    event_recorded.send(sender=Event, event=event)
    return event


def _in_atomic_block() -> bool:
    return bool(transaction.get_connection().in_atomic_block)


def _drop_sensitive_auth(txn: Transaction) -> None:
    """Security codes, PINs and track data go once the transaction is final (PCI DSS 3.3.1).

    Until then a failover may still need them. Written at once, in the caller's atomic block
    under its row lock, so the status and the details change together; the pipeline's own saves
    leave the details column alone.
    """
    if not has_sensitive_auth(txn.payment_details):
        return
    txn.payment_details = without_sensitive_auth(txn.payment_details)
    Transaction.objects.filter(pk=txn.pk).update(payment_details=txn.payment_details)


def payment_details_purge(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Replace the details of final transactions past the retention by their masked form.

    Safe to run twice and concurrently: each batch skips rows another run holds, and a purged
    row is marked so that it is not picked again. Returns how many were purged.
    """
    from .masking import mask_details
    from .methods import mask_method_details

    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.PAYGATE_PAYMENT_DETAILS_RETENTION_DAYS)
    purged = 0
    while True:
        with transaction.atomic():
            batch = list(
                Transaction.objects.select_for_update(skip_locked=True)
                .filter(status__in=FINAL_STATUSES, details_purged_at__isnull=True, finished_at__lte=cutoff)
                .only("pk", "payment_details", "payment_method")[:batch_size]
            )
            for txn in batch:
                masked = (
                    mask_method_details(txn.payment_method, txn.payment_details)
                    if txn.payment_method
                    else mask_details(txn.payment_details)
                )
                Transaction.objects.filter(pk=txn.pk).update(payment_details=masked, details_purged_at=now)
        purged += len(batch)
        PAYMENT_DETAILS_PURGED.inc(len(batch))
        if len(batch) < batch_size:
            break
    if purged:
        logger.info("purged the payment details of %d final transactions", purged)
    return purged


def transaction_lock(transaction_id: Any) -> Transaction:
    """The transaction, its row locked until the end of the atomic block.

    Its customer comes in the same statement (its row is not locked): the event of a change
    shows the customer's reference.
    """
    txn = Transaction.objects.select_for_update(of=("self",)).select_related("customer").get(pk=transaction_id)
    status_lock_note(txn)
    return txn


def transaction_lock_by_attempt(attempt_id: Any) -> Transaction | None:
    """The transaction an attempt belongs to, its row locked (one statement); None if no such attempt."""
    txn = (
        Transaction.objects.select_for_update(of=("self",))
        .select_related("customer")
        .filter(attempts__pk=attempt_id)
        .first()
    )
    if txn is not None:
        status_lock_note(txn)
    return txn


def api_key_create(*, client_name: str) -> tuple[ApiClient, str]:
    """A new key for the client of that name (created if new). Only the key's hash is stored."""
    from .models import ClientAPIKey

    name = client_name.strip()
    if not name:
        raise ApplicationError("A client name is required.")
    with transaction.atomic():
        client, _ = ApiClient.objects.get_or_create(name=name[:100])
        _, key = ClientAPIKey.objects.create_key(name=name[:50], client=client)
    return client, key
