"""Saved payment methods in the admin: masked, read only; deleting one erases its details."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import PaymentMethod
from .services import payment_method_delete


@admin.register(PaymentMethod)
class PaymentMethodAdmin(admin.ModelAdmin):
    list_display = ("id", "type", "client", "customer", "last4", "created_at", "deleted_at")
    list_filter = ("type", "created_at")
    list_select_related = ("client", "customer")
    search_fields = ("=id", "customer__reference")
    # `details` is never shown, not even masked: the last four characters are all anyone sees.
    fields = ("id", "type", "client", "customer", "last4", "exp_month", "exp_year", "created_at", "deleted_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # view only: the view permission shows the page

    def delete_model(self, request: HttpRequest, obj: PaymentMethod) -> None:
        # Through the service: the details are erased and the merchant gets payment_method.deleted.
        if not obj.is_deleted:
            payment_method_delete(client=obj.client, method_id=obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for method in queryset.select_related("client"):
            self.delete_model(request, method)
