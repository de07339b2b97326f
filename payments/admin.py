from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from core.admin import ReadOnlyMixin

from .models import ApiClient, Attempt, ClientAPIKey, Event, FailureReason, Refund, RefundAttempt, Transaction
from .money import format_amount
from .selectors import transaction_masked_details

# Why a transaction was set aside for a person, by how it got there (payments.processing).
REVIEW_EXPIRED = (
    "Expired without an answer from the gateway: the merchant was told it failed, but the gateway "
    "may still have paid. Check the payment at the gateway (its reference is the last attempt's id) "
    "and settle any difference with the merchant."
)
REVIEW_PAYMENT_ID = (
    "The gateway's answer named another payment id than its callback: what was applied is in doubt. "
    "Ask the gateway which payment is real."
)


class AttemptInline(ReadOnlyMixin, admin.TabularInline):
    model = Attempt
    extra = 0
    fields = (
        "number",
        "id",
        "gateway",
        "route_round",
        "outcome",
        "error",
        "gateway_payment_id",
        "http_status",
        "latency_ms",
        "routing_decision",
        "created_at",
    )
    readonly_fields = fields
    ordering = ("number",)

    def get_queryset(self, request: HttpRequest) -> Any:
        # The row labels name the gateway.
        return super().get_queryset(request).select_related("gateway")

    @admin.display(description="Why this gateway")
    def routing_decision(self, attempt: Attempt) -> str:
        return describe_routing(attempt.routing)


def describe_routing(record: dict[str, Any] | None) -> str:
    """An attempt's routing decision (gateways.routing), in a line: strategy, the routes as ranked, skips."""
    if not record:
        return "–"
    ranked = []
    for route in record.get("routes", []):
        text = f"{route.get('gateway')} (priority {route.get('priority')}"
        if "score" in route:
            score = route["score"]
            text += f", score {score:.3f}" if isinstance(score, (int, float)) else ""
            text += f" of {route.get('samples')} outcomes" if route.get("measured") else ", default: too few outcomes"
            if route.get("p95_ms") is not None:
                text += f", p95 {route['p95_ms']:.0f} ms" + (" over the limit" if route.get("slow") else "")
        ranked.append(text + ")")
    skipped = [f"{entry.get('gateway')} ({entry.get('why')})" for entry in record.get("skipped", [])]
    explored = " — explored: sent off the best-scored route on purpose" if record.get("explored") else ""
    return format_html(
        "<strong>{}</strong>{}<br>ranked: {}{}",
        record.get("strategy", "?"),
        explored,
        " › ".join(ranked) or "none",
        format_html("<br>skipped: {}", ", ".join(skipped)) if skipped else "",
    )


class EventInline(ReadOnlyMixin, admin.TabularInline):
    """The transaction's status history: its events, oldest first (they are append-only)."""

    model = Event
    extra = 0
    verbose_name = "status change"
    verbose_name_plural = "Timeline (events)"
    fields = ("created_at", "type", "status", "gateway", "failure_reason", "public_id")
    readonly_fields = fields
    ordering = ("id",)

    @admin.display(description="Status")
    def status(self, event: Event) -> str:
        return str(event.data.get("object", {}).get("status", ""))

    @admin.display(description="Gateway")
    def gateway(self, event: Event) -> str:
        return str(event.data.get("object", {}).get("gateway") or "")

    @admin.display(description="Failure reason")
    def failure_reason(self, event: Event) -> str:
        return str(event.data.get("object", {}).get("failure_reason") or "")

    @admin.display(description="Event id")
    def public_id(self, event: Event) -> str:
        return event.public_id


class RefundInline(ReadOnlyMixin, admin.TabularInline):
    model = Refund
    fk_name = "transaction"
    extra = 0
    show_change_link = True
    fields = ("id", "amount", "status", "failure_reason", "reason", "gateway_refund_id", "created_at", "finished_at")
    readonly_fields = fields
    ordering = ("-created_at",)


class RefundAttemptInline(ReadOnlyMixin, admin.TabularInline):
    model = RefundAttempt
    extra = 0
    fields = ("number", "outcome", "error", "http_status", "latency_ms", "created_at")
    readonly_fields = fields
    ordering = ("number",)


@admin.register(Refund)
class RefundAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Refunds come from the merchants' API; here they are only looked at."""

    list_display = (
        "id",
        "client",
        "transaction",
        "amount",
        "currency",
        "status",
        "failure_reason",
        "gateway",
        "created_at",
    )
    list_filter = ("status", "failure_reason", "gateway", "needs_review", "created_at")
    list_select_related = ("client", "gateway")
    search_fields = ("=id", "=transaction__id", "gateway_refund_id", "idempotency_key")
    date_hierarchy = "created_at"
    inlines = [RefundAttemptInline]
    fields = (
        "id",
        "client",
        "transaction",
        "gateway",
        "amount",
        "currency",
        "status",
        "failure_reason",
        "reason",
        "gateway_refund_id",
        "idempotency_key",
        "retry_round",
        "next_check_at",
        "lookup_count",
        "needs_review",
        "created_at",
        "updated_at",
        "finished_at",
    )
    readonly_fields = fields


@admin.register(Transaction)
class TransactionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "client",
        "type",
        "status",
        "failure_reason",
        "amount_in_currency",
        "country",
        "gateway",
        "created_at",
    )
    list_filter = ("status", "type", "country", "gateway", "failure_reason", "needs_review", "created_at")
    list_select_related = ("client", "gateway", "country")
    search_fields = ("=id", "gateway_reference", "customer__reference", "idempotency_key")
    date_hierarchy = "created_at"
    # callbacks/admin.py adds the transaction's callback events: callbacks sit above payments.
    inlines = [EventInline, AttemptInline, RefundInline]
    # The card data is shown masked only; the fingerprint (request_hash) is keyed, but it is still
    # derived from the card data: nobody needs to see it.
    fields = (
        "id",
        "client",
        "type",
        "status",
        "failure_reason",
        "amount_in_currency",
        "country",
        "customer",
        "payment_method",
        "masked_payment_details",
        "metadata",
        "gateway",
        "gateway_reference",
        "return_url",
        "locale",
        "customer_action",
        "idempotency_key",
        "route_round",
        "next_check_at",
        "lookup_count",
        "review",
        "created_at",
        "updated_at",
        "finished_at",
        "details_purged_at",
    )
    readonly_fields = fields

    @admin.display(description="Payment details (masked)")
    def masked_payment_details(self, txn: Transaction) -> str:
        return format_html("<code>{}</code>", json.dumps(transaction_masked_details(txn)))

    @admin.display(description="Customer action")
    def customer_action(self, txn: Transaction) -> str:
        """What the gateway asked the customer (CONTRACT §11); the form fields' names, not their values."""
        if not txn.action:
            return "-"
        shown = {k: v for k, v in txn.action.items() if k != "fields"}
        shown["fields"] = sorted(txn.action.get("fields") or {})
        return format_html("<code>{}</code>", json.dumps(shown))

    @admin.display(description="Amount", ordering="amount")
    def amount_in_currency(self, txn: Transaction) -> str:
        return f"{format_amount(txn.amount, txn.currency)} {txn.currency}"

    @admin.display(description="Needs review")
    def review(self, txn: Transaction) -> str:
        if not txn.needs_review:
            return "No"
        why = REVIEW_EXPIRED if txn.failure_reason == FailureReason.EXPIRED else REVIEW_PAYMENT_ID
        return format_html('<strong>Yes</strong> — <span class="review-reason">{}</span>', why)


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


# Clients' keys are ClientAPIKey; the package's own unbound key model is not used.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


@admin.register(ClientAPIKey)
class ClientAPIKeyAdmin(APIKeyModelAdmin):
    # The package leaves its tuples unannotated, so mypy takes their lengths for their types.
    list_display = (*APIKeyModelAdmin.list_display, "client", "last_used_at")  # type: ignore[assignment]
    list_filter = (*APIKeyModelAdmin.list_filter, "client")  # type: ignore[assignment]
