"""Reads for routing: which gateways may take a transaction, in which order, and their scores."""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from core.localcache import LocalCache

from .models import ROUTING_CACHE, TRANSACTION_TYPES, Country, Gateway, GatewayRoute
from .routing import Ranking, RouteChoice, RouteScore, RoutingSettings, Strategy, routes_rank, score_value
from .scores import ScoreKey, scores_read
from .types import GatewayCredentials

# Routes, countries' routing settings and gateway rows, per process, following every edit at
# once (core.localcache): an admin edit or `set_routing` applies to the next transaction.
_routes: LocalCache[list[RouteChoice]] = LocalCache(ROUTING_CACHE)
_countries: LocalCache[RoutingSettings] = LocalCache(ROUTING_CACHE)
_gateways: LocalCache[Gateway] = LocalCache(ROUTING_CACHE)


def route_list(
    *, country_code: str, currency: str, transaction_type: str, payment_method: str = ""
) -> list[RouteChoice]:
    """Active routes of active gateways for this country, currency, type and method, priority first.

    Health is reported, not filtered: a route that exists but is unhealthy makes the
    transaction wait rather than be refused. The list is cached in the process until the
    next change to a country, gateway or route.
    """
    return list(
        _routes.get(
            (country_code, currency, transaction_type, payment_method),
            lambda: _load_routes(
                country_code=country_code,
                currency=currency,
                transaction_type=transaction_type,
                payment_method=payment_method,
            ),
        )
    )


def country_routing(country_code: str) -> RoutingSettings:
    """The country's routing settings (the defaults for a country that does not exist)."""
    settings = _countries.get(
        country_code,
        lambda: next((c.routing_settings for c in Country.objects.filter(code=country_code)), None),
    )
    return settings if settings is not None else RoutingSettings()


def route_scores(
    routes: Collection[RouteChoice],
    *,
    country_code: str,
    currency: str,
    transaction_type: str,
    payment_method: str = "",
) -> dict[int, RouteScore]:
    """The current scores of these routes for a currency, type and method, by gateway id (one round trip)."""
    keys = {
        route.gateway_id: ScoreKey(
            gateway_id=route.gateway_id,
            country=country_code,
            currency=currency,
            transaction_type=transaction_type,
            payment_method=payment_method,
        )
        for route in routes
    }
    scores = scores_read(list(keys.values()))
    return {gateway_id: scores[key] for gateway_id, key in keys.items()}


@dataclass(frozen=True, slots=True)
class RouteScoreLine:
    """One route's current score for one currency and transaction type, for people to read."""

    currency: str
    transaction_type: str
    payment_method: str  # "" for free-form details
    score: float  # what the success-rate strategy ranks it by now
    measured: bool  # False: fewer outcomes than the country's minimum, `score` is its default
    success_rate: float | None  # measured over the window, whatever the minimum; None without outcomes
    samples: int
    p95_ms: float | None

    @property
    def success_percent(self) -> float | None:
        return None if self.success_rate is None else 100 * self.success_rate


def route_score_lines(routes: Sequence[GatewayRoute]) -> dict[int, list[RouteScoreLine]]:
    """By route id: the current scores of each currency and type the route serves (one round trip).

    Each route's `country` should be loaded with it (select_related).
    """
    wanted: list[tuple[GatewayRoute, str, str, str]] = []
    for route in routes:
        for currency in route.currencies or [route.country.currency]:
            for kind in route.transaction_types or TRANSACTION_TYPES:
                # Free-form details, then each method the route names (all of them are scored apart).
                for method in ["", *route.payment_methods]:
                    wanted.append((route, currency, kind, method))
    keys = [
        ScoreKey(
            gateway_id=route.gateway_id,
            country=route.country.code,
            currency=currency,
            transaction_type=kind,
            payment_method=method,
        )
        for route, currency, kind, method in wanted
    ]
    read = scores_read(keys)
    lines: dict[int, list[RouteScoreLine]] = {route.pk: [] for route in routes}
    for (route, currency, kind, method), key in zip(wanted, keys, strict=True):
        score = read[key]
        value, measured = score_value(score, route.country.routing_settings)
        lines[route.pk].append(
            RouteScoreLine(
                currency=currency,
                transaction_type=kind,
                payment_method=method,
                score=value,
                measured=measured,
                success_rate=score.success_rate,
                samples=score.samples,
                p95_ms=score.p95_ms,
            )
        )
    return lines


def route_ranking(
    *,
    country_code: str,
    currency: str,
    transaction_type: str,
    payment_method: str = "",
    tried: Collection[int] = (),
    draw: Callable[[], float] = random.random,
) -> Ranking:
    """The routes to try now, in the order of the country's strategy, and why (`gateways.routing`).

    Scores are read (one round trip to the shared store) only for a `success_rate` country.
    The ranking says how long this took (`decided_in_us`), for the attempt's record.
    """
    started = time.perf_counter()
    routes = route_list(
        country_code=country_code, currency=currency, transaction_type=transaction_type, payment_method=payment_method
    )
    settings = country_routing(country_code)
    scores = (
        route_scores(
            [route for route in routes if route.healthy and route.gateway_id not in tried],
            country_code=country_code,
            currency=currency,
            transaction_type=transaction_type,
            payment_method=payment_method,
        )
        if settings.strategy == Strategy.SUCCESS_RATE and routes
        else {}
    )
    ranking = routes_rank(routes, settings=settings, scores=scores, draw=draw, tried=tried)
    return dataclasses.replace(ranking, decided_in_us=round((time.perf_counter() - started) * 1e6))


def gateway_get(gateway_id: int) -> Gateway | None:
    """The gateway row, with its decrypted credentials, cached like the routes. Treat it as read-only."""
    return _gateways.get(gateway_id, lambda: Gateway.objects.filter(pk=gateway_id).first())


def gateway_by_code(code: str) -> Gateway | None:
    """`gateway_get`, by the gateway's code (callbacks name their gateway in the URL)."""
    return _gateways.get(("code", code), lambda: Gateway.objects.filter(code=code).first())


def _load_routes(*, country_code: str, currency: str, transaction_type: str, payment_method: str) -> list[RouteChoice]:
    routes = (
        GatewayRoute.objects.filter(country__code=country_code, is_active=True, gateway__is_active=True)
        .select_related("gateway", "country")
        # Credentials are decrypted on load: routing does not need them.
        .defer("gateway__api_key", "gateway__callback_secret", "gateway__previous_callback_secret")
        .order_by("priority", "id")
    )
    return [
        RouteChoice(
            gateway_id=route.gateway_id,
            gateway_code=route.gateway.code,
            priority=route.priority,
            healthy=route.gateway.health_status != Gateway.Health.UNHEALTHY,
        )
        for route in routes
        if route.serves(
            currency=currency,
            transaction_type=transaction_type,
            country_currency=route.country.currency,
            payment_method=payment_method,
        )
    ]


def gateway_credentials(gateway: Gateway) -> GatewayCredentials:
    return GatewayCredentials(
        code=gateway.code,
        base_url=gateway.base_url.rstrip("/"),
        api_key=gateway.api_key,
        connect_timeout=gateway.connect_timeout,
        read_timeout=gateway.read_timeout,
    )
