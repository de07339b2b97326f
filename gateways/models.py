"""Countries, gateways and the per-country priority routes between them."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from fernet_fields import EncryptedTextField

from core.localcache import InvalidatingQuerySet

TRANSACTION_TYPES = ("deposit", "withdrawal")
_CURRENCY = re.compile(r"[A-Z]{3}")
# Routing and gateway rows are cached in each process under this generation (gateways.selectors).
ROUTING_CACHE = "routing"
# Written on every health check; no cached reader uses them, so they do not invalidate routing.
GATEWAY_BOOKKEEPING_FIELDS = frozenset(
    {
        "last_checked_at",
        "last_check_latency_ms",
        "consecutive_check_failures",
        "consecutive_check_successes",
        "updated_at",
    }
)


class RoutingQuerySet(InvalidatingQuerySet):
    cache_names = (ROUTING_CACHE,)


class GatewayQuerySet(RoutingQuerySet):
    bookkeeping_fields = GATEWAY_BOOKKEEPING_FIELDS


def all_transaction_types() -> list[str]:
    return list(TRANSACTION_TYPES)


def validate_currency_list(value: object) -> None:
    """A route's currencies: a list of ISO 4217 codes (empty: the country's own)."""
    if not isinstance(value, list) or not all(isinstance(code, str) and _CURRENCY.fullmatch(code) for code in value):
        raise ValidationError('A list of ISO 4217 codes in upper case, such as ["EUR"], or [] for the country\'s own.')


def validate_transaction_types(value: object) -> None:
    if not isinstance(value, list) or not all(item in TRANSACTION_TYPES for item in value):
        raise ValidationError(f"A list of transaction types: {', '.join(TRANSACTION_TYPES)} (empty: all).")


class Country(models.Model):
    code = models.CharField(
        max_length=2, unique=True, validators=[RegexValidator(r"^[A-Z]{2}$", "ISO 3166-1 alpha-2, upper case")]
    )
    name = models.CharField(max_length=100)
    currency = models.CharField(max_length=3, validators=[RegexValidator(r"^[A-Z]{3}$", "ISO 4217, upper case")])

    objects = RoutingQuerySet.as_manager()

    class Meta:
        ordering = ["code"]
        verbose_name_plural = "countries"

    def __str__(self) -> str:
        return f"{self.code} ({self.currency})"


class Gateway(models.Model):
    class DataFormat(models.TextChoices):
        JSON = "json", "JSON over HTTP"
        XML = "xml", "SOAP 1.1 / XML"

    class Health(models.TextChoices):
        UNKNOWN = "unknown", "Unknown (not checked yet)"
        HEALTHY = "healthy", "Healthy"
        UNHEALTHY = "unhealthy", "Unhealthy"

    code = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    data_format = models.CharField(max_length=8, choices=DataFormat.choices)
    base_url = models.URLField(max_length=500)
    api_key = EncryptedTextField()
    webhook_secret = EncryptedTextField()
    # Accepted besides the current secret while a gateway rotates its webhook secret.
    previous_webhook_secret = EncryptedTextField(blank=True, default="")
    connect_timeout = models.FloatField(default=3.0, help_text="Seconds to establish a connection.")
    read_timeout = models.FloatField(default=10.0, help_text="Seconds to wait for the answer once sent.")
    is_active = models.BooleanField(default=True, help_text="A disabled gateway gets no traffic.")
    health_status = models.CharField(max_length=10, choices=Health.choices, default=Health.UNKNOWN)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_check_latency_ms = models.FloatField(null=True, blank=True)
    consecutive_check_failures = models.PositiveIntegerField(default=0)
    consecutive_check_successes = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = GatewayQuerySet.as_manager()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class GatewayRoute(models.Model):
    """One gateway serving one country, at a priority (1 is tried first)."""

    country = models.ForeignKey(Country, on_delete=models.CASCADE, related_name="routes")
    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="routes")
    priority = models.PositiveSmallIntegerField(default=1)
    # Empty means the country's own currency.
    currencies = models.JSONField(default=list, blank=True, validators=[validate_currency_list])
    transaction_types = models.JSONField(
        default=all_transaction_types, blank=True, validators=[validate_transaction_types]
    )
    is_active = models.BooleanField(default=True)

    objects = RoutingQuerySet.as_manager()

    class Meta:
        ordering = ["country__code", "priority", "id"]
        constraints = [models.UniqueConstraint(fields=["country", "gateway"], name="route_country_gateway_unique")]

    def __str__(self) -> str:
        return f"{self.country.code} → {self.gateway.code}, priority {self.priority}"

    def serves(self, *, currency: str, transaction_type: str, country_currency: str) -> bool:
        currencies = self.currencies or [country_currency]
        types = self.transaction_types or list(TRANSACTION_TYPES)
        return currency in currencies and transaction_type in types
