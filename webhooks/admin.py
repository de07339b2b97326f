"""Webhook endpoints (editable; the secret is never shown again, only rotated) and deliveries (read-only)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from core.admin import ReadOnlyMixin
from core.errors import ApplicationError

from .models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from .services import (
    delivery_redeliver,
    event_patterns,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_update,
    webhook_events_check,
    webhook_secret_rotate,
    webhook_url_check,
)


class EndpointForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        choices=[(pattern, pattern) for pattern in event_patterns()],
        widget=forms.CheckboxSelectMultiple,
        help_text='"*" is every event; "transaction.*" every event of a transaction.',
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("client", "url", "events", "active")

    def clean_url(self) -> str:
        return _as_form_error(webhook_url_check, self.cleaned_data.get("url"))

    def clean_events(self) -> list[str]:
        return _as_form_error(webhook_events_check, list(self.cleaned_data.get("events") or []))


def _as_form_error(check: Any, value: Any) -> Any:
    try:
        return check(value)
    except ApplicationError as exc:
        raise forms.ValidationError(exc.message) from None


SECRET_TEMPLATE = "admin/webhooks/webhookendpoint/secret.html"  # nosec B105  # a template path, not a secret


def _secret_page(
    admin_site: admin.AdminSite, request: HttpRequest, secrets: list[tuple[WebhookEndpoint, str]]
) -> HttpResponse:
    """The new secrets on a page of their own: never in the messages cookie (signed, not
    encrypted), never stored by a browser or a proxy."""
    context = {**admin_site.each_context(request), "secrets": secrets, "title": "Signing secret, shown once"}
    response = TemplateResponse(request, SECRET_TEMPLATE, context)
    add_never_cache_headers(response)
    response["Cache-Control"] = "no-store, private"
    return response


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ("url", "client", "events", "active", "created_at")
    list_filter = ("active", "client")
    search_fields = ("url",)
    readonly_fields = ("id", "created_at", "updated_at")
    actions = ["rotate_secret"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEndpoint]:
        return super().get_queryset(request).filter(deleted_at__isnull=True)

    def delete_model(self, request: HttpRequest, obj: WebhookEndpoint) -> None:
        webhook_endpoint_delete(endpoint=obj)  # kept as a deleted row (see the service)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            webhook_endpoint_delete(endpoint=endpoint)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The owner of an endpoint never changes.
        return (*self.readonly_fields, "client") if obj is not None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool) -> None:
        # Through the services: the same URL rules as the API; a new secret is shown once, here.
        try:
            if change:
                webhook_endpoint_update(
                    endpoint=obj, url=obj.url, events=form.cleaned_data["events"], active=obj.active
                )
            else:
                created = webhook_endpoint_create(
                    client=obj.client, url=obj.url, events=form.cleaned_data["events"], active=obj.active
                )
                obj.pk = created.endpoint.pk
                request._new_webhook_secret = created.secret  # type: ignore[attr-defined]  # for response_add
        except ApplicationError as exc:
            messages.error(request, f"Not saved: {exc.message}")
            raise

    def response_add(self, request: HttpRequest, obj: WebhookEndpoint, post_url_continue: str | None = None) -> Any:
        secret = getattr(request, "_new_webhook_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        return _secret_page(self.admin_site, request, [(obj, secret)])

    # Rotating hands out a secret that signs the merchant's webhooks: only who may change endpoints.
    @admin.action(description="Rotate the signing secret (shown once)", permissions=["change"])
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> HttpResponse:
        secrets = [(endpoint, webhook_secret_rotate(endpoint=endpoint)) for endpoint in queryset]
        return _secret_page(self.admin_site, request, secrets)


class AttemptInline(ReadOnlyMixin, admin.TabularInline):
    model = WebhookDeliveryAttempt
    extra = 0
    fields = ("created_at", "status_code", "error", "duration_ms")
    readonly_fields = fields


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("created_at", "event_type", "event", "endpoint", "status", "attempt_count", "next_attempt_at")
    list_filter = ("status", "created_at")
    list_select_related = ("event", "endpoint")
    search_fields = ("endpoint__url",)
    readonly_fields = (
        "event",
        "endpoint",
        "status",
        "attempt_count",
        "next_attempt_at",
        "in_flight_until",
        "created_at",
        "finished_at",
    )
    inlines = [AttemptInline]
    actions = ["redeliver"]

    @admin.display(description="Type")
    def event_type(self, delivery: WebhookDelivery) -> str:
        return delivery.event.type

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        # Whoever may edit endpoints may send to them again; auditors only look.
        return bool(request.user.has_perm("webhooks.change_webhookendpoint"))

    @admin.action(description="Deliver the event again", permissions=["redeliver"])
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        count = skipped = 0
        for delivery in queryset.select_related("event", "endpoint"):
            if delivery_redeliver(delivery=delivery) is None:
                skipped += 1
            else:
                count += 1
        messages.success(request, f"{count} deliveries queued again.")
        if skipped:
            messages.warning(request, f"{skipped} not: their endpoint was deleted.")
