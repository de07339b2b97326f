"""Writes on gateways and routes."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core.errors import NotFound, ValidationFailed
from core.netguard import BlockedAddress

from .adapters.http import gateway_address_policy
from .demo import DEMO_COUNTRIES, DEMO_GATEWAYS
from .models import GATEWAY_BOOKKEEPING_FIELDS, Country, Gateway, GatewayRoute
from .scores import ScoreKey, Window, client_share_admits, score_record
from .selectors import country_routing

logger = logging.getLogger(__name__)


def demo_seed(
    *, host: str = "127.0.0.1", ports: dict[str, int] | None = None, base_urls: dict[str, str] | None = None
) -> None:
    """Create the demo gateways, countries and routes that are missing; edits made since are kept.

    `base_urls` (code → URL) overrides where a sandbox is, e.g. another container's name.
    """
    ports = ports or {}
    base_urls = base_urls or {}
    with transaction.atomic():
        gateways = {}
        for demo in DEMO_GATEWAYS:
            port = ports.get(demo.code, demo.port)
            gateway, _ = Gateway.objects.get_or_create(
                code=demo.code,
                defaults={
                    "name": demo.name,
                    "data_format": demo.data_format,
                    "base_url": base_urls.get(demo.code, f"http://{host}:{port}"),
                    "api_key": demo.api_key,
                    "callback_secret": demo.callback_secret,
                    "is_active": True,
                },
            )
            gateways[demo.code] = gateway
        for code, name, currency, routes in DEMO_COUNTRIES:
            country, _ = Country.objects.get_or_create(code=code, defaults={"name": name, "currency": currency})
            for gateway_code, priority in routes:
                GatewayRoute.objects.get_or_create(
                    country=country,
                    gateway=gateways[gateway_code],
                    defaults={"priority": priority, "is_active": True, "currencies": [currency]},
                )


CREDENTIAL_FIELDS = ("api_key", "callback_secret")


def gateway_base_url_check(*, base_url: str) -> None:
    """Refuse a base URL that gateway calls may not go to (with DEBUG off: https to a public address).

    The same rule is applied again on every connection (gateways.adapters.http), so a name
    that resolves elsewhere later still reaches nothing.
    """
    try:
        gateway_address_policy().check_url(base_url)
    except BlockedAddress as exc:
        raise ValidationFailed(str(exc), fields={"base_url": [str(exc)]}) from None


def gateway_save(*, gateway: Gateway, credentials_replaced: Iterable[str] = ()) -> Gateway:
    """Store a new or edited gateway. A changed base URL drops every credential not replaced with it.

    Credentials belong to the address they were issued for: kept across a change of base
    URL, the API key would be sent to whatever host was typed, and the old callback secret
    would keep signing callbacks for it. `credentials_replaced` names the credential fields
    the caller set anew in this same change. A gateway left without credentials is disabled.
    """
    gateway_base_url_check(base_url=gateway.base_url)
    replaced = set(credentials_replaced)
    with transaction.atomic():
        stored = Gateway.objects.select_for_update().filter(pk=gateway.pk).first() if gateway.pk else None
        if stored is not None and stored.base_url.rstrip("/") != gateway.base_url.rstrip("/"):
            for name in CREDENTIAL_FIELDS:
                if name not in replaced:
                    setattr(gateway, name, "")
            gateway.previous_callback_secret = ""  # nosec B105  # forgets the old address's secret
            if not all(getattr(gateway, name) for name in CREDENTIAL_FIELDS):
                gateway.is_active = False
            logger.warning(
                "gateway base URL changed; credentials not given anew were cleared",
                extra={"gateway": gateway.code, "cleared": sorted(set(CREDENTIAL_FIELDS) - replaced)},
            )
        gateway.save()
    return gateway


def gateway_health_record(*, gateway_id: int, up: bool, latency_ms: float | None) -> Gateway:
    """Record one health check. K failures in a row make a gateway unhealthy, M successes healthy.

    A gateway never checked before turns healthy on its first good check.
    """
    with transaction.atomic():
        gateway = Gateway.objects.select_for_update().get(pk=gateway_id)
        previous = gateway.health_status
        if up:
            gateway.consecutive_check_successes += 1
            gateway.consecutive_check_failures = 0
            if gateway.health_status == Gateway.Health.UNKNOWN or (
                gateway.health_status == Gateway.Health.UNHEALTHY
                and gateway.consecutive_check_successes >= settings.PAYGATE_HEALTH_RECOVERY_THRESHOLD
            ):
                gateway.health_status = Gateway.Health.HEALTHY
        else:
            gateway.consecutive_check_failures += 1
            gateway.consecutive_check_successes = 0
            if gateway.consecutive_check_failures >= settings.PAYGATE_HEALTH_FAILURE_THRESHOLD:
                gateway.health_status = Gateway.Health.UNHEALTHY
        gateway.last_checked_at = timezone.now()
        gateway.last_check_latency_ms = latency_ms
        # Bookkeeping alone leaves the routing caches alone; a change of health invalidates them.
        changed = ["health_status"] if gateway.health_status != previous else []
        gateway.save(update_fields=[*changed, *GATEWAY_BOOKKEEPING_FIELDS])
    if previous != gateway.health_status:
        # Losing health is what an operator must see; gaining it is routine (every start-up).
        level = logging.WARNING if gateway.health_status == Gateway.Health.UNHEALTHY else logging.INFO
        logger.log(level, "gateway health %s -> %s", previous, gateway.health_status, extra={"gateway": gateway.code})
    return gateway


def gateway_check_health(*, gateway_id: int, min_interval: float = 0.0) -> Gateway | None:
    """Call the gateway's health endpoint and record the answer.

    With `min_interval`, a gateway checked more recently than that is skipped: a second
    beat, or a check scheduled twice, then changes nothing.
    """
    from .adapters import get_adapter
    from .selectors import gateway_credentials
    from .types import HealthResult

    gateway = Gateway.objects.filter(pk=gateway_id, is_active=True).first()
    if gateway is None:
        return None
    if (
        min_interval
        and gateway.last_checked_at is not None
        and (timezone.now() - gateway.last_checked_at).total_seconds() < min_interval
    ):
        return None
    result, latency_ms = get_adapter(gateway.data_format, gateway_credentials(gateway)).check_health()
    return gateway_health_record(gateway_id=gateway.pk, up=result == HealthResult.UP, latency_ms=latency_ms)


def country_routing_set(
    *,
    country_code: str,
    strategy: str | None = None,
    exploration: float | None = None,
    latency_threshold_ms: int | None = None,
    window: int | None = None,
    window_seconds: int | None = None,
    min_samples: int | None = None,
    default_score: float | None = None,
) -> Country:
    """Change a country's routing settings; None leaves one as it is, a latency threshold of 0 removes it.

    Validated as the admin validates them. Saved through the ORM, so every process routes the
    country's next transaction by the new settings (gateways.selectors caches them per process).
    """
    changes = {
        "routing_strategy": strategy,
        "routing_exploration": exploration,
        "routing_window": window,
        "routing_window_seconds": window_seconds,
        "routing_min_samples": min_samples,
        "routing_default_score": default_score,
    }
    with transaction.atomic():
        country = Country.objects.select_for_update().filter(code=country_code).first()
        if country is None:
            raise NotFound(f"Unknown country {country_code!r}.")
        for name, value in changes.items():
            if value is not None:
                setattr(country, name, value)
        if latency_threshold_ms is not None:
            country.routing_latency_threshold_ms = latency_threshold_ms or None
        try:
            country.full_clean()
        except ValidationError as exc:
            fields = exc.message_dict
            raise ValidationFailed(
                "; ".join(f"{name}: {' '.join(messages)}" for name, messages in fields.items()), fields=fields
            ) from None
        country.save()
    logger.info(
        "routing of %s set to %s (exploration %s, latency threshold %s ms)",
        country.code,
        country.routing_strategy,
        country.routing_exploration,
        country.routing_latency_threshold_ms,
    )
    return country


def route_score_record(
    *,
    gateway_id: int,
    country: str,
    currency: str,
    transaction_type: str,
    payment_method: str = "",
    success: bool | None = None,
    latency_ms: float | None = None,
    client_id: int | None = None,
) -> None:
    """What an attempt told about its route, for the success-rate strategy (CONTRACT §10).

    `success`: True when its payment completed; False for a decline, a failed payment or a
    technical fault; None when the outcome is not known yet. `latency_ms`: its call's.
    Recorded in the shared store once the caller's database transaction commits (at once
    outside one), so a rolled-back step counts nothing; never raises. Every country's routes
    are scored, whatever its strategy, so that a switch to `success_rate` starts informed.
    `client_id`: whose transaction it was; its outcomes count up to PAYGATE_ROUTING_CLIENT_SHARE
    of the window (`gateways.scores.client_share_admits`); past it, nothing of them is recorded.
    """
    if success is None and latency_ms is None:
        return

    def record() -> None:
        routing = country_routing(country)
        key = ScoreKey(
            gateway_id=gateway_id,
            country=country,
            currency=currency,
            transaction_type=transaction_type,
            payment_method=payment_method,
        )
        window = Window(size=routing.window, seconds=routing.window_seconds)
        if (
            success is not None
            and client_id is not None
            and not client_share_admits(
                key, client_id=client_id, window=window, share=settings.PAYGATE_ROUTING_CLIENT_SHARE
            )
        ):
            # Nothing at all: a latency alone still takes a slot of the window's ring, and would
            # push the other clients' outcomes out of it.
            return
        score_record(key, window=window, success=success, latency_ms=latency_ms)

    transaction.on_commit(record, robust=True)
