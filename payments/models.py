"""API clients, customers, transactions, their gateway attempts, and the events of their status changes."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models
from rest_framework_api_key.models import AbstractAPIKey, APIKeyManager

from core.fields import EncryptedJSONField
from core.localcache import InvalidatingQuerySet
from gateways.models import Country, Gateway

# Keys are cached in each process under this generation (payments.auth); using one is bookkeeping.
API_KEYS_CACHE = "api_keys"
API_KEY_BOOKKEEPING_FIELDS = frozenset({"last_used_at"})
# Customer rows, by (client, reference), are cached in each process once committed (payments.services).
CUSTOMERS_CACHE = "customers"


class ClientAPIKeyQuerySet(InvalidatingQuerySet):
    cache_names = (API_KEYS_CACHE,)
    bookkeeping_fields = API_KEY_BOOKKEEPING_FIELDS


ClientAPIKeyManager = APIKeyManager.from_queryset(ClientAPIKeyQuerySet)


class ApiClient(models.Model):
    """A merchant backend. Every transaction belongs to exactly one client."""

    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # DRF's IsAuthenticated asks the authenticated principal this.
    is_authenticated = True

    def __str__(self) -> str:
        return self.name


class ClientAPIKey(AbstractAPIKey):
    """An API key of a client, stored hashed; `revoked` keys stop working at once."""

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="api_keys")
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[ClientAPIKeyManager] = ClientAPIKeyManager()

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"


class CustomerQuerySet(InvalidatingQuerySet):
    cache_names = (CUSTOMERS_CACHE,)


class Customer(models.Model):
    # No single-column indexes: (client, reference) is unique, and a country is never looked up
    # from its customers but when an operator deletes it.
    client = models.ForeignKey(ApiClient, on_delete=models.PROTECT, related_name="customers", db_index=False)
    reference = models.CharField(max_length=100, help_text="The merchant's own customer id.")
    country = models.ForeignKey(Country, on_delete=models.PROTECT, to_field="code", related_name="+", db_index=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CustomerQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "reference"], name="customer_client_reference_unique")]

    def __str__(self) -> str:
        return self.reference


class TransactionType(models.TextChoices):
    DEPOSIT = "deposit", "Deposit"
    WITHDRAWAL = "withdrawal", "Withdrawal"


class TransactionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    """Stored and queued: no gateway has it yet (or every gateway tried so far did not act)."""
    REQUIRES_ACTION = "requires_action", "Requires action"
    """A gateway accepted it and waits for the customer (a bank login, 3-D Secure, a code): never failed over."""
    PROCESSING = "processing", "Processing"
    """A gateway accepted it, or may have after an unknown outcome: awaiting its callback or a look-up."""
    COMPLETED = "completed", "Completed"
    """Final: the gateway confirmed the payment."""
    FAILED = "failed", "Failed"
    """Final: declined, no gateway in time, failed at the gateway, or expired (see failure_reason)."""


class FailureReason(models.TextChoices):
    DECLINED = "declined", "Declined"
    NO_GATEWAY_AVAILABLE = "no_gateway_available", "No gateway available"
    GATEWAY_FAILED = "gateway_failed", "Gateway failed"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"


FINAL_STATUSES = frozenset({TransactionStatus.COMPLETED, TransactionStatus.FAILED})

# The state machine: every status change goes through `payments.services.transaction_transition`.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    TransactionStatus.PENDING: frozenset(
        {
            TransactionStatus.REQUIRES_ACTION,
            TransactionStatus.PROCESSING,
            TransactionStatus.COMPLETED,
            TransactionStatus.FAILED,
        }
    ),
    # The gateway has the payment and waits for the customer: it ends there, never elsewhere.
    TransactionStatus.REQUIRES_ACTION: frozenset(
        {TransactionStatus.PROCESSING, TransactionStatus.COMPLETED, TransactionStatus.FAILED}
    ),
    # Back to pending only when the gateway whose outcome was unknown confirms it never
    # received the attempt: the transaction then fails over like any "did not act".
    TransactionStatus.PROCESSING: frozenset(
        {TransactionStatus.COMPLETED, TransactionStatus.FAILED, TransactionStatus.PENDING}
    ),
    TransactionStatus.COMPLETED: frozenset(),
    TransactionStatus.FAILED: frozenset(),
}


class MoneyMovement(models.Model):
    """What a transaction and a refund share: money moved through a gateway at a client's request,
    once, whatever the retries (an idempotency key), and driven by a pipeline the recovery sweep
    watches (`next_check_at`) until it is final."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    amount = models.DecimalField(max_digits=24, decimal_places=4)
    currency = models.CharField(max_length=3)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    # HMAC-SHA256 of the canonical request under PAYGATE_FINGERPRINT_KEYS: decides replay vs 409.
    request_hash = models.CharField(max_length=64, blank=True, default="")
    # When the recovery sweep should look at this row again if nothing else has.
    next_check_at = models.DateTimeField(null=True, blank=True)
    lookup_count = models.PositiveIntegerField(default=0)
    needs_review = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["client", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="%(class)s_client_idempotency_key_unique",
            ),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="%(class)s_amount_positive"),
        ]

    def __str__(self) -> str:
        return str(self.id)


class Transaction(MoneyMovement):
    # Every status change rewrites each of the row's index entries (the status is indexed, so no
    # update is HOT): only the indexes some query needs. A client's rows are found through
    # `txn_client_created`; a country's only when an operator deletes it.
    client = models.ForeignKey(ApiClient, on_delete=models.PROTECT, related_name="transactions", db_index=False)
    type = models.CharField(max_length=10, choices=TransactionType.choices)
    status = models.CharField(max_length=20, choices=TransactionStatus.choices, default=TransactionStatus.PENDING)
    failure_reason = models.CharField(max_length=32, choices=FailureReason.choices, null=True, blank=True)
    country = models.ForeignKey(Country, on_delete=models.PROTECT, to_field="code", related_name="+", db_index=False)
    # CONTRACT §11: where the customer's browser goes when the payment is over (deposits only).
    return_url = models.CharField(max_length=2000, blank=True, default="")
    # The customer's language for the pay page (BCP 47), as the merchant gave it.
    locale = models.CharField(max_length=35, blank=True, default="")
    # What the gateway asks the customer to do (payments.actions): type, url, method, fields, code.
    action = models.JSONField(null=True, blank=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="transactions")
    payment_details = EncryptedJSONField(default=dict, blank=True)
    # payments.methods.PaymentMethod; empty when the details are free-form (CONTRACT §12).
    payment_method = models.CharField(max_length=16, blank=True, default="")
    # The customer asked to keep the details (without a security code) once the deposit completes.
    save_payment_method = models.BooleanField(default=False)
    # The saved method (`pm_…`) whose details this transaction used, if any.
    saved_method_id = models.CharField(max_length=40, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    gateway = models.ForeignKey(Gateway, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    gateway_reference = models.CharField(max_length=255, blank=True, default="")
    # Failover rounds: all routes did not act in round N → wait, then round N+1.
    route_round = models.PositiveIntegerField(default=0)
    # The number of its latest attempt, written with it: the row lock's read says which attempt is
    # current without a query of its own, and tells when a holder of the lock added one.
    attempt_count = models.PositiveIntegerField(default=0)
    needs_review = models.BooleanField(
        default=False, help_text="Expired without an answer from the gateway: an operator should look."
    )
    # Set when the retention purge replaced `payment_details` by its masked form.
    details_purged_at = models.DateTimeField(null=True, blank=True)

    class Meta(MoneyMovement.Meta):
        indexes = [
            models.Index(fields=["client", "-created_at"], name="txn_client_created"),
            models.Index(fields=["status", "next_check_at"], name="txn_status_next_check"),
        ]

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


class AttemptOutcome(models.TextChoices):
    PENDING = "pending", "Pending"
    """Committed before the call; the gateway's answer is not recorded yet."""
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    ERROR = "error", "Error (the gateway did not act)"
    UNKNOWN = "unknown", "Unknown (the gateway may have acted)"


class Attempt(models.Model):
    """One try at one gateway. Its id is the reference (and idempotency key) sent to the gateway."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Both found through the composite indexes below: (transaction, number), (gateway, -created_at).
    transaction = models.ForeignKey(Transaction, on_delete=models.CASCADE, related_name="attempts", db_index=False)
    number = models.PositiveIntegerField()
    route_round = models.PositiveIntegerField(default=0)
    gateway = models.ForeignKey(Gateway, on_delete=models.PROTECT, related_name="attempts", db_index=False)
    outcome = models.CharField(max_length=10, choices=AttemptOutcome.choices, default=AttemptOutcome.PENDING)
    error = models.CharField(max_length=100, blank=True, default="")
    gateway_payment_id = models.CharField(max_length=255, blank=True, default="")
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    # Why this gateway was chosen (gateways.routing): strategy, the scores seen, explored or not.
    routing = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["transaction", "number"]
        constraints = [
            # Two concurrent runs of the processing task cannot both add attempt N.
            models.UniqueConstraint(fields=["transaction", "number"], name="attempt_transaction_number_unique"),
        ]
        indexes = [models.Index(fields=["gateway", "-created_at"], name="attempt_gateway_created")]

    def __str__(self) -> str:
        return f"Attempt {self.number} at {self.gateway.code}"


# The columns the pipeline writes (everything else is fixed at creation): saves name them,
# so that a step neither rewrites nor re-encrypts the rest of the row.
TRANSACTION_PIPELINE_FIELDS = (
    "status",
    "action",
    "failure_reason",
    "gateway",
    "gateway_reference",
    "route_round",
    "next_check_at",
    "lookup_count",
    "needs_review",
    "finished_at",
    "updated_at",
)
ATTEMPT_RESULT_FIELDS = ("outcome", "error", "gateway_payment_id", "http_status", "latency_ms", "updated_at")


class RefundStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    """Stored: not yet accepted by the gateway (it may be waiting for the gateway to come back)."""
    PROCESSING = "processing", "Processing"
    """The gateway accepted it: awaiting its callback or a look-up."""
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class RefundFailureReason(models.TextChoices):
    DECLINED = "declined", "Declined"
    GATEWAY_FAILED = "gateway_failed", "Gateway failed"
    EXPIRED = "expired", "Expired"


REFUND_FINAL_STATUSES = frozenset({RefundStatus.SUCCEEDED, RefundStatus.FAILED})

# Every change goes through `payments.refunds.services.refund_transition`. A refund always goes to the
# same gateway with the same reference, so it never needs to go back to pending.
REFUND_TRANSITIONS: dict[str, frozenset[str]] = {
    RefundStatus.PENDING: frozenset({RefundStatus.PROCESSING, RefundStatus.SUCCEEDED, RefundStatus.FAILED}),
    RefundStatus.PROCESSING: frozenset({RefundStatus.SUCCEEDED, RefundStatus.FAILED}),
    RefundStatus.SUCCEEDED: frozenset(),
    RefundStatus.FAILED: frozenset(),
}


class Refund(MoneyMovement):
    """Money given back on a completed deposit, through the gateway that took it. Its id is the
    reference (and idempotency key) sent to that gateway, on every try."""

    client = models.ForeignKey(ApiClient, on_delete=models.PROTECT, related_name="refunds")
    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="refunds")
    gateway = models.ForeignKey(Gateway, on_delete=models.PROTECT, related_name="refunds")
    status = models.CharField(max_length=10, choices=RefundStatus.choices, default=RefundStatus.PENDING)
    failure_reason = models.CharField(max_length=32, choices=RefundFailureReason.choices, null=True, blank=True)
    reason = models.CharField(max_length=255, blank=True, default="", help_text="The merchant's reason.")
    gateway_refund_id = models.CharField(max_length=255, blank=True, default="")
    # Rounds of "the gateway did not act": the same gateway is tried again after a backoff.
    retry_round = models.PositiveIntegerField(default=0)

    class Meta(MoneyMovement.Meta):
        indexes = [
            models.Index(fields=["transaction", "-created_at"], name="refund_transaction"),
            models.Index(fields=["status", "next_check_at"], name="refund_status_next_check"),
        ]

    @property
    def is_final(self) -> bool:
        return self.status in REFUND_FINAL_STATUSES


class RefundAttempt(models.Model):
    """One call to the gateway about a refund (the reference is always the refund's id)."""

    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    outcome = models.CharField(max_length=10, choices=AttemptOutcome.choices, default=AttemptOutcome.PENDING)
    error = models.CharField(max_length=100, blank=True, default="")
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["refund", "number"]
        constraints = [
            models.UniqueConstraint(fields=["refund", "number"], name="refund_attempt_number_unique"),
        ]

    def __str__(self) -> str:
        return f"Refund attempt {self.number}"


REFUND_PIPELINE_FIELDS = (
    "status",
    "failure_reason",
    "gateway_refund_id",
    "retry_round",
    "next_check_at",
    "lookup_count",
    "needs_review",
    "finished_at",
    "updated_at",
)
REFUND_ATTEMPT_RESULT_FIELDS = ("outcome", "error", "http_status", "latency_ms", "updated_at")


class EventType(models.TextChoices):
    TRANSACTION_CREATED = "transaction.created", "Transaction created"
    TRANSACTION_REQUIRES_ACTION = "transaction.requires_action", "Transaction requires action"
    TRANSACTION_PROCESSING = "transaction.processing", "Transaction processing"
    # Back from `processing` when the gateway whose outcome was unknown never received it (rare).
    TRANSACTION_PENDING = "transaction.pending", "Transaction pending again"
    TRANSACTION_COMPLETED = "transaction.completed", "Transaction completed"
    TRANSACTION_FAILED = "transaction.failed", "Transaction failed"
    REFUND_CREATED = "refund.created", "Refund created"
    REFUND_SUCCEEDED = "refund.succeeded", "Refund succeeded"
    REFUND_FAILED = "refund.failed", "Refund failed"
    # CONTRACT §12: a customer's saved payment method (the object is the method, masked).
    PAYMENT_METHOD_SAVED = "payment_method.saved", "Payment method saved"
    PAYMENT_METHOD_DELETED = "payment_method.deleted", "Payment method deleted"


EVENT_PREFIX = "evt_"


class EventQuerySet(models.QuerySet["Event"]):
    """Events are append-only: the ORM refuses to change or remove them (so does a PostgreSQL trigger)."""

    def update(self, **kwargs: object) -> int:
        raise TypeError("Events are append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError("Events are append-only.")


class Event(models.Model):
    """One status change (or creation) of a transaction, written in the same database transaction.

    The feed's order is (`txid`, `id`): the writing database transaction's id, then the row id.
    See `payments.selectors.event_feed` and docs/architecture.md for why that order never skips
    an event. `data.object` is the transaction as the API showed it right after the change.
    """

    id = models.BigAutoField(primary_key=True)
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Found through the composite indexes below: (client, txid, id) and (transaction, id).
    client = models.ForeignKey(ApiClient, on_delete=models.PROTECT, related_name="+", db_index=False)
    type = models.CharField(max_length=40, choices=EventType.choices)
    transaction = models.ForeignKey(
        Transaction, on_delete=models.PROTECT, null=True, blank=True, related_name="events", db_index=False
    )
    refund = models.ForeignKey(Refund, on_delete=models.PROTECT, null=True, blank=True, related_name="events")
    data = models.JSONField()
    # PostgreSQL: the writer's transaction id (pg_current_xact_id()); 0 where writers are serial (SQLite).
    txid = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ["txid", "id"]
        indexes = [
            models.Index(fields=["client", "txid", "id"], name="event_client_feed"),
            models.Index(fields=["transaction", "id"], name="event_transaction"),
        ]

    def __str__(self) -> str:
        return self.public_id

    @property
    def public_id(self) -> str:
        return f"{EVENT_PREFIX}{self.uid.hex}"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding:
            raise TypeError("Events are append-only.")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise TypeError("Events are append-only.")
