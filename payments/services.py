"""Writes: creating transactions (with idempotency) and moving them through the state machine."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from gateways.selectors import route_list
from paygate.db import single_statement
from paygate.errors import ApplicationError, IdempotencyConflict, NoRoute
from paygate.localcache import LocalCache
from paygate.logs import bind
from paygate.metrics import TRANSACTIONS_CREATED, TRANSACTIONS_FINISHED

from .models import (
    ALLOWED_TRANSITIONS,
    CUSTOMERS_CACHE,
    FINAL_STATUSES,
    TRANSACTION_PIPELINE_FIELDS,
    ApiClient,
    Attempt,
    Customer,
    FailureReason,
    Transaction,
    TransactionStatus,
)

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

    def fingerprint(self) -> str:
        """The same request, whatever its wire format, hashes the same."""
        canonical = json.dumps(
            {
                "type": self.type,
                "customer_id": self.customer_id,
                "country": self.country,
                "amount": format(self.amount.normalize(), "f"),
                "currency": self.currency,
                "payment_details": self.payment_details,
                "metadata": self.metadata,
            },
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class CreateResult:
    transaction: Transaction
    replayed: bool


def _replay(*, client: ApiClient, idempotency_key: str, fingerprint: str) -> CreateResult | None:
    existing = Transaction.objects.filter(client=client, idempotency_key=idempotency_key).first()
    if existing is None:
        return None
    if existing.request_hash != fingerprint:
        raise IdempotencyConflict(
            "This Idempotency-Key was already used with a different request.",
            fields={"idempotency_key": idempotency_key},
        )
    return CreateResult(transaction=existing, replayed=True)


def transaction_create(
    *, client: ApiClient, data: TransactionInput, idempotency_key: str | None = None
) -> CreateResult:
    """Store a transaction as `pending` and queue its processing once the row is committed.

    The idempotency key is enforced by a unique constraint: the INSERT is tried first, and
    only when it collides is the earlier transaction read and replayed. So concurrent
    requests with one key make one transaction, and a first request costs no extra read.
    """
    fingerprint = data.fingerprint()
    if not route_list(country_code=data.country, currency=data.currency, transaction_type=data.type):
        # A replay answers as the first request did, even if the route has gone since.
        if idempotency_key is not None:
            replay = _replay(client=client, idempotency_key=idempotency_key, fingerprint=fingerprint)
            if replay is not None:
                return replay
        raise NoRoute(
            f"No active gateway route for a {data.type} in {data.currency} to {data.country}.",
            fields={"country": data.country, "currency": data.currency},
        )

    from .tasks import publish_process_transaction

    customer_key = (client.pk, data.customer_id)
    customer = _customers.peek(customer_key)
    try:
        # A known customer leaves one INSERT, which commits on its own; a new one is created with it.
        with transaction.atomic() if customer is None else single_statement():
            if customer is None:
                # The routes above exist, so the country does: its code is the foreign key.
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
                metadata=data.metadata,
                idempotency_key=idempotency_key,
                request_hash=fingerprint,
                # If the publish below is lost, the recovery sweep picks it up from here.
                next_check_at=timezone.now() + timedelta(seconds=settings.PAYGATE_SWEEP_GRACE_SECONDS),
            )
            # A new transaction has no attempts yet: spare the response a query for them.
            txn._prefetched_objects_cache = {"attempts": Attempt.objects.none()}
            txn_id = txn.pk
            transaction.on_commit(lambda: publish_process_transaction(txn_id), robust=True)
    except IntegrityError:
        if idempotency_key is None:
            raise
        replay = _replay(client=client, idempotency_key=idempotency_key, fingerprint=fingerprint)
        if replay is None:
            raise
        return replay
    bind(transaction_id=txn.pk)
    TRANSACTIONS_CREATED.labels(type=txn.type, country=txn.country_id).inc()
    logger.info("transaction created", extra={"type": txn.type})
    return CreateResult(transaction=txn, replayed=False)


def transaction_transition(txn: Transaction, *, to: str, failure_reason: str | None = None, save: bool = True) -> None:
    """Move a locked transaction to `to`, enforcing the state machine.

    The caller holds the row lock (select_for_update) inside an atomic block.
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
        transaction.on_commit(
            lambda: TRANSACTIONS_FINISHED.labels(
                type=txn.type,
                status=to,
                country=txn.country_id,
                gateway=txn.gateway.code if txn.gateway_id else "none",
                failure_reason=failure_reason or "",
            ).inc()
        )
    if save:
        txn.save(update_fields=TRANSACTION_PIPELINE_FIELDS)


def transaction_lock(transaction_id: Any, *, with_customer: bool = False) -> Transaction:
    """The transaction, its row locked until the end of the atomic block (the customer's row is not)."""
    queryset = Transaction.objects.select_for_update(of=("self",))
    if with_customer:
        queryset = queryset.select_related("customer")
    return queryset.get(pk=transaction_id)


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
