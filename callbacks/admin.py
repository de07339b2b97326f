from __future__ import annotations

from django.contrib import admin

from payments.admin import ReadOnlyMixin

from .models import CallbackEvent


@admin.register(CallbackEvent)
class CallbackEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("received_at", "gateway", "event_id", "reference", "status", "result", "flagged", "flag_reason")
    list_filter = ("flagged", "result", "gateway", "received_at")
    search_fields = ("event_id", "reference", "payment_id")
    readonly_fields = [f.name for f in CallbackEvent._meta.fields]
