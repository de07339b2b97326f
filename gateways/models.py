"""Countries, gateways and the per-country priority routes between them."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from fernet_fields import EncryptedTextField

from core.localcache import InvalidatingQuerySet

from .methods import validate_payment_methods
from .routing import RoutingSettings, Strategy

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


# Bounds of a country's routing settings, kept by the model's validators and by the database.
MAX_EXPLORATION = 0.5
MIN_WINDOW = 10
MAX_WINDOW = 100_000
MIN_WINDOW_SECONDS = 10
MAX_WINDOW_SECONDS = 7 * 24 * 3600
_DEFAULTS = RoutingSettings()


class Country(models.Model):
    class RoutingStrategy(models.TextChoices):
        PRIORITY = Strategy.PRIORITY.value, "Priority order"
        SUCCESS_RATE = Strategy.SUCCESS_RATE.value, "Recent success rate"

    code = models.CharField(
        max_length=2, unique=True, validators=[RegexValidator(r"^[A-Z]{2}$", "ISO 3166-1 alpha-2, upper case")]
    )
    name = models.CharField(max_length=100)
    currency = models.CharField(max_length=3, validators=[RegexValidator(r"^[A-Z]{3}$", "ISO 4217, upper case")])
    # How this country's routes are ordered (gateways.routing, CONTRACT §10).
    routing_strategy = models.CharField(
        "strategy", max_length=16, choices=RoutingStrategy.choices, default=RoutingStrategy.PRIORITY
    )
    routing_exploration = models.FloatField(
        "exploration",
        default=_DEFAULTS.exploration,
        validators=[MinValueValidator(0.0), MaxValueValidator(MAX_EXPLORATION)],
        help_text="Success rate only: the share of transactions sent to another eligible route than the best "
        f"scored, so that every route's score stays fresh (0 to {MAX_EXPLORATION}).",
    )
    routing_latency_threshold_ms = models.PositiveIntegerField(
        "latency threshold (ms)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Success rate only: a gateway whose recent p95 latency is above this goes last. Empty: no limit.",
    )
    routing_window = models.PositiveIntegerField(
        "window (outcomes)",
        default=_DEFAULTS.window,
        validators=[MinValueValidator(MIN_WINDOW), MaxValueValidator(MAX_WINDOW)],
        help_text="A route's score counts at most this many of its recent outcomes...",
    )
    routing_window_seconds = models.PositiveIntegerField(
        "window (seconds)",
        default=_DEFAULTS.window_seconds,
        validators=[MinValueValidator(MIN_WINDOW_SECONDS), MaxValueValidator(MAX_WINDOW_SECONDS)],
        help_text="...and, while the route has traffic, about this many seconds of it: older outcomes drop out.",
    )
    routing_min_samples = models.PositiveIntegerField(
        "minimum samples",
        default=_DEFAULTS.min_samples,
        validators=[MinValueValidator(1)],
        help_text="A route with fewer outcomes in its window is scored at the default score.",
    )
    routing_default_score = models.FloatField(
        "default score",
        default=_DEFAULTS.default_score,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="The score of a route with too few recent outcomes, 0 to 1. "
        "1 (optimistic) makes an untried route go first until it has a score of its own.",
    )

    objects = RoutingQuerySet.as_manager()

    class Meta:
        ordering = ["code"]
        verbose_name_plural = "countries"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(routing_strategy__in=[Strategy.PRIORITY.value, Strategy.SUCCESS_RATE.value]),
                name="country_routing_strategy_known",
            ),
            models.CheckConstraint(
                condition=models.Q(routing_exploration__gte=0, routing_exploration__lte=MAX_EXPLORATION),
                name="country_routing_exploration_range",
            ),
            models.CheckConstraint(
                condition=models.Q(routing_latency_threshold_ms__isnull=True)
                | models.Q(routing_latency_threshold_ms__gte=1),
                name="country_routing_latency_threshold_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(routing_window__gte=MIN_WINDOW, routing_window__lte=MAX_WINDOW),
                name="country_routing_window_range",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    routing_window_seconds__gte=MIN_WINDOW_SECONDS, routing_window_seconds__lte=MAX_WINDOW_SECONDS
                ),
                name="country_routing_window_seconds_range",
            ),
            models.CheckConstraint(
                condition=models.Q(routing_min_samples__gte=1, routing_min_samples__lte=models.F("routing_window")),
                name="country_routing_min_samples_in_window",
            ),
            models.CheckConstraint(
                condition=models.Q(routing_default_score__gte=0, routing_default_score__lte=1),
                name="country_routing_default_score_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} ({self.currency})"

    def clean(self) -> None:
        super().clean()
        if self.routing_min_samples and self.routing_window and self.routing_min_samples > self.routing_window:
            raise ValidationError(
                {
                    "routing_min_samples": f"At most the window ({self.routing_window} outcomes): a route could never "
                    "collect more."
                }
            )

    @property
    def routing_settings(self) -> RoutingSettings:
        return RoutingSettings(
            strategy=self.routing_strategy,
            window=self.routing_window,
            window_seconds=self.routing_window_seconds,
            min_samples=self.routing_min_samples,
            default_score=self.routing_default_score,
            exploration=self.routing_exploration,
            latency_threshold_ms=self.routing_latency_threshold_ms,
        )


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
    # Signs the callbacks this gateway sends us (CONTRACT §2's `webhook_secret`); the webhooks we send
    # merchants are signed with their endpoint's own secret (webhooks.WebhookEndpoint.secret).
    callback_secret = EncryptedTextField()
    # Accepted besides the current secret while a gateway rotates its callback secret.
    previous_callback_secret = EncryptedTextField(blank=True, default="")
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
    # Empty means every method, and details without a method (CONTRACT §12).
    payment_methods = models.JSONField(default=list, blank=True, validators=[validate_payment_methods])
    is_active = models.BooleanField(default=True)

    objects = RoutingQuerySet.as_manager()

    class Meta:
        ordering = ["country__code", "priority", "id"]
        constraints = [models.UniqueConstraint(fields=["country", "gateway"], name="route_country_gateway_unique")]

    def __str__(self) -> str:
        return f"{self.country.code} → {self.gateway.code}, priority {self.priority}"

    def serves(self, *, currency: str, transaction_type: str, country_currency: str, payment_method: str = "") -> bool:
        currencies = self.currencies or [country_currency]
        types = self.transaction_types or list(TRANSACTION_TYPES)
        # Free-form details (no method) go to any route that serves the currency and type.
        method_ok = not payment_method or not self.payment_methods or payment_method in self.payment_methods
        return currency in currencies and transaction_type in types and method_ok
