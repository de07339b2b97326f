from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from core.admin import ReadOnlyMixin

from .models import ApiClient, Attempt, ClientAPIKey, Transaction
from .selectors import transaction_masked_details


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
        "created_at",
    )
    readonly_fields = fields
    ordering = ("number",)


@admin.register(Transaction)
class TransactionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "client",
        "type",
        "status",
        "failure_reason",
        "amount",
        "currency",
        "country",
        "gateway",
        "created_at",
    )
    list_filter = ("status", "type", "country", "gateway", "failure_reason", "needs_review", "created_at")
    list_select_related = ("client", "gateway")
    search_fields = ("=id", "gateway_reference", "customer__reference", "idempotency_key")
    date_hierarchy = "created_at"
    # callbacks/admin.py adds the transaction's callback events: callbacks sit above payments.
    inlines = [AttemptInline]
    # The fingerprint is keyed, but it is still derived from the card data: nobody needs to see it.
    exclude = ("payment_details", "request_hash")
    readonly_fields = ("masked_payment_details",)

    @admin.display(description="Payment details (masked)")
    def masked_payment_details(self, txn: Transaction) -> str:
        return format_html("<code>{}</code>", json.dumps(transaction_masked_details(txn)))


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
