from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from core.admin import ReadOnlyMixin
from payments.admin import TransactionAdmin

from .models import CallbackEvent


@admin.register(CallbackEvent)
class CallbackEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("received_at", "gateway", "event_id", "reference", "status", "result", "flagged", "flag_reason")
    list_filter = ("flagged", "result", "gateway", "received_at")
    search_fields = ("event_id", "reference", "payment_id")
    readonly_fields = [f.name for f in CallbackEvent._meta.fields]
    list_select_related = ("gateway",)


class CallbackInline(ReadOnlyMixin, admin.TabularInline):
    model = CallbackEvent
    extra = 0
    fields = ("received_at", "gateway", "event_id", "status", "result", "flag_reason")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> Any:
        # The row labels name the gateway.
        return super().get_queryset(request).select_related("gateway")


# The transaction page lists the callbacks that named it; payments knows nothing of callbacks.
TransactionAdmin.inlines = [*TransactionAdmin.inlines, CallbackInline]
