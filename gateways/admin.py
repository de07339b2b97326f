from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.db.models import Count, Q
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from core.currencies import ISO_4217, minor_units
from core.errors import ValidationFailed

from .breaker import breaker_close, breaker_force_open, breaker_state
from .methods import PaymentMethod
from .models import TRANSACTION_TYPES, Country, Gateway, GatewayRoute
from .selectors import route_score_lines
from .services import CREDENTIAL_FIELDS, gateway_base_url_check, gateway_check_health, gateway_save


class RouteForm(forms.ModelForm):
    """Currencies and transaction types are picked from their lists; they are stored as lists of codes.

    No currency picked means the country's own currency (it follows the country when that changes).
    A route serves at least one transaction type: "none" would read as "all" in the stored format.
    """

    currencies = forms.MultipleChoiceField(
        required=False,
        label="Currencies (none chosen: the country's own)",
        widget=FilteredSelectMultiple("currencies", is_stacked=False),
        help_text="None chosen: the country's own currency.",
    )
    transaction_types = forms.MultipleChoiceField(
        choices=[(kind, kind.capitalize()) for kind in TRANSACTION_TYPES],
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Pick at least one. To stop the route, untick is active."},
    )
    payment_methods = forms.MultipleChoiceField(
        choices=PaymentMethod.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Payment methods (none ticked: every method)",
        help_text="None ticked: every method, and details without a method.",
    )

    class Meta:
        model = GatewayRoute
        fields = ("gateway", "priority", "currencies", "transaction_types", "payment_methods", "is_active")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = list(self.instance.currencies or []) if self.instance.pk else []
        # A stored code that is not (or no longer) in ISO 4217 stays choosable: saving the row keeps it.
        currencies = cast(forms.MultipleChoiceField, self.fields["currencies"])
        currencies.choices = [(code, code) for code in sorted(ISO_4217 | set(stored))]
        if self.instance.pk and not self.instance.transaction_types:
            # Stored as [] ("all types"): shown ticked, so that saving the row unchanged changes nothing.
            self.initial["transaction_types"] = list(TRANSACTION_TYPES)


class RouteInline(admin.TabularInline):
    model = GatewayRoute
    form = RouteForm
    extra = 0
    fields = ("gateway", "priority", "currencies", "transaction_types", "payment_methods", "is_active")
    ordering = ("priority",)

    def get_queryset(self, request: HttpRequest) -> Any:
        # The row labels name the country and the gateway.
        return super().get_queryset(request).select_related("country", "gateway")


def describe_currencies(route: GatewayRoute) -> str:
    return ", ".join(route.currencies) if route.currencies else "the country's own"


def describe_transaction_types(route: GatewayRoute) -> str:
    return ", ".join(route.transaction_types) if route.transaction_types else "all"


def describe_payment_methods(route: GatewayRoute) -> str:
    return ", ".join(route.payment_methods) if route.payment_methods else "all"


@admin.register(Country)
class CountryAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "currency", "currency_minor_units", "routing_strategy", "route_summary")
    list_filter = ("routing_strategy",)
    search_fields = ("code", "name")
    inlines = [RouteInline]
    readonly_fields = ("current_scores",)
    fieldsets = (
        (None, {"fields": ("code", "name", "currency")}),
        (
            "Routing",
            {
                "description": "How this country's routes are ordered. A change applies to its next transaction. "
                "Every strategy skips unhealthy gateways and open circuit breakers.",
                "fields": (
                    "routing_strategy",
                    "routing_exploration",
                    "routing_latency_threshold_ms",
                    ("routing_window", "routing_window_seconds"),
                    ("routing_min_samples", "routing_default_score"),
                    "current_scores",
                ),
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("routes__gateway")

    @admin.display(description="Current scores")
    def current_scores(self, country: Country) -> str:
        if not country.pk:
            return "–"
        routes = list(country.routes.select_related("gateway", "country").order_by("priority", "id"))
        lines = route_score_lines(routes)
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    f"{route.gateway.code} (priority {route.priority})",
                    f"{line.currency} {line.transaction_type}"
                    + (f" {line.payment_method}" if line.payment_method else ""),
                    f"{line.score:.3f}" + ("" if line.measured else " (default)"),
                    "–" if line.success_rate is None else f"{100 * line.success_rate:.1f}%",
                    line.samples,
                    "–" if line.p95_ms is None else f"{line.p95_ms:.0f} ms",
                )
                for route in routes
                for line in lines[route.pk]
            ),
        )
        return format_html(
            "<table><thead><tr><th>Route</th><th>Currency, type, method</th><th>Score</th><th>Success rate</th>"
            "<th>Outcomes in window</th><th>p95 latency</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="Minor units (ISO 4217)")
    def currency_minor_units(self, country: Country) -> int:
        return minor_units(country.currency)

    @admin.display(description="Routes (priority order)")
    def route_summary(self, country: Country) -> str:
        routes = sorted(country.routes.all(), key=lambda r: r.priority)
        return ", ".join(f"{r.gateway.code} {r.priority}{'' if r.is_active else ' (off)'}" for r in routes)


class GatewayForm(forms.ModelForm):
    """Credentials are write-only: the form never shows the stored values.

    A changed base URL needs a new API key and callback secret in the same save: the stored
    ones are never sent to, nor accepted from, another address (gateways.services.gateway_save).
    """

    credentials_replaced: list[str]

    base_url = forms.URLField(
        assume_scheme="https",
        max_length=500,
        help_text="Changing it requires the API key and callback secret again. "
        "With DEBUG off: https:// to a public address, unless the host is in PAYGATE_GATEWAY_ALLOWED_HOSTS.",
    )
    api_key = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Leave empty to keep the current key (not when the base URL changes).",
    )
    callback_secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Leave empty to keep the current secret (not when the base URL changes).",
    )

    class Meta:
        model = Gateway
        exclude = ("previous_callback_secret",)

    def clean_base_url(self) -> str:
        base_url: str = self.cleaned_data["base_url"]
        try:
            gateway_base_url_check(base_url=base_url)
        except ValidationFailed as exc:
            raise forms.ValidationError(exc.message) from None
        return base_url

    @property
    def base_url_changed(self) -> bool:
        new = (self.cleaned_data.get("base_url") or "").rstrip("/")
        return bool(self.instance.pk) and new != (self.initial.get("base_url") or "").rstrip("/")

    def clean(self) -> dict[str, Any]:
        data = cast(dict[str, Any], super().clean())  # a ModelForm's clean() returns its cleaned_data
        # What was typed in this save; empty fields are filled with the stored values below.
        self.credentials_replaced = [name for name in CREDENTIAL_FIELDS if data.get(name)]
        moved = self.base_url_changed
        for name in CREDENTIAL_FIELDS:
            if not data.get(name):
                if not self.instance.pk:
                    self.add_error(name, "Required for a new gateway.")
                elif moved:
                    self.add_error(name, "Required when the base URL changes: the stored one is not kept.")
                else:
                    data[name] = getattr(self.instance, name)
        return data

    def save(self, commit: bool = True) -> Gateway:
        gateway = super().save(commit=False)
        if (
            self.instance.pk
            and not self.base_url_changed
            and "callback_secret" in self.changed_data
            and self.cleaned_data.get("callback_secret")
        ):
            # A new secret starts a changeover: callbacks signed with the old one keep
            # working until "Finish callback secret rotation" forgets it.
            previous = Gateway.objects.get(pk=self.instance.pk).callback_secret
            if previous != gateway.callback_secret:
                gateway.previous_callback_secret = previous
        if commit:
            gateway_save(gateway=gateway, credentials_replaced=self.credentials_replaced)
        return gateway


@admin.register(Gateway)
class GatewayAdmin(admin.ModelAdmin):
    form = GatewayForm
    list_display = (
        "code",
        "name",
        "data_format",
        "is_active",
        "health_status",
        "breaker",
        "last_checked_at",
        "last_check_latency_ms",
        "success_rate_last_hour",
        "base_url",
    )
    list_filter = ("data_format", "is_active", "health_status")
    search_fields = ("code", "name")
    readonly_fields = (
        "health_status",
        "breaker",
        "last_checked_at",
        "last_check_latency_ms",
        "consecutive_check_failures",
        "consecutive_check_successes",
        "created_at",
        "updated_at",
    )
    actions = ["check_health_now", "open_breaker", "close_breaker", "finish_secret_rotation", "disable_gateways"]

    def save_model(self, request: HttpRequest, obj: Gateway, form: Any, change: bool) -> None:
        gateway_save(gateway=obj, credentials_replaced=form.credentials_replaced)

    def get_queryset(self, request: HttpRequest) -> Any:
        since = timezone.now() - timedelta(hours=1)
        recent = Q(attempts__created_at__gte=since)
        answered = recent & Q(attempts__outcome__in=["accepted", "declined"])
        return (
            super()
            .get_queryset(request)
            .annotate(
                attempts_last_hour=Count("attempts", filter=recent),
                answered_last_hour=Count("attempts", filter=answered),
            )
        )

    @admin.display(description="Breaker")
    def breaker(self, gateway: Gateway) -> str:
        return str(breaker_state(gateway.pk))

    @admin.display(description="Answered, last hour")
    def success_rate_last_hour(self, gateway: Gateway) -> str:
        total = getattr(gateway, "attempts_last_hour", 0)
        if not total:
            return "no traffic"
        # Annotated by get_queryset(), which the model's type does not know.
        return f"{100 * gateway.answered_last_hour / total:.0f}% of {total}"  # type: ignore[attr-defined]

    @admin.action(permissions=["change"], description="Check health now")
    def check_health_now(self, request: HttpRequest, queryset: Any) -> None:
        for gateway in queryset:
            checked = gateway_check_health(gateway_id=gateway.pk)
            status = checked.health_status if checked else "skipped (disabled)"
            self.message_user(request, f"{gateway.code}: {status}")

    @admin.action(permissions=["change"], description="Open the circuit breaker (stop traffic until closed)")
    def open_breaker(self, request: HttpRequest, queryset: Any) -> None:
        for gateway in queryset:
            breaker_force_open(gateway.pk)
        self.message_user(request, f"Opened the breaker of {queryset.count()} gateway(s).", messages.WARNING)

    @admin.action(permissions=["change"], description="Close the circuit breaker")
    def close_breaker(self, request: HttpRequest, queryset: Any) -> None:
        for gateway in queryset:
            breaker_close(gateway.pk)
        self.message_user(request, f"Closed the breaker of {queryset.count()} gateway(s).")

    @admin.action(
        permissions=["change"], description="Finish callback secret rotation (stop accepting the previous secret)"
    )
    def finish_secret_rotation(self, request: HttpRequest, queryset: Any) -> None:
        for gateway in queryset:
            gateway.previous_callback_secret = ""  # nosec B105  # forgets the retired secret; not a credential
            gateway.save(update_fields=["previous_callback_secret", "updated_at"])
        self.message_user(request, f"Only the current callback secret is accepted now ({queryset.count()}).")

    @admin.action(permissions=["change"], description="Disable the selected gateways (no more traffic)")
    def disable_gateways(self, request: HttpRequest, queryset: Any) -> None:
        count = queryset.update(is_active=False)
        self.message_user(request, f"Disabled {count} gateway(s).", messages.WARNING)


@admin.register(GatewayRoute)
class GatewayRouteAdmin(admin.ModelAdmin):
    form = RouteForm
    fields = ("country", *RouteForm.Meta.fields)
    list_display = (
        "route",
        "country",
        "gateway",
        "priority",
        "is_active",
        "currency_list",
        "type_list",
        "method_list",
    )
    list_editable = ("priority", "is_active")
    list_filter = ("country", "gateway", "is_active")
    list_select_related = ("country", "gateway")

    @admin.display(description="Route")
    def route(self, route: GatewayRoute) -> str:
        return str(route)

    @admin.display(description="Currencies")
    def currency_list(self, route: GatewayRoute) -> str:
        return describe_currencies(route)

    @admin.display(description="Transaction types")
    def type_list(self, route: GatewayRoute) -> str:
        return describe_transaction_types(route)

    @admin.display(description="Payment methods")
    def method_list(self, route: GatewayRoute) -> str:
        return describe_payment_methods(route)
