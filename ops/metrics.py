"""`/metrics`: the counters of every process (`core.metrics`), and gauges read at scrape time.

Counters and histograms are defined in `core.metrics`, where the apps count them, in
prometheus_client's multiprocess mode; `/metrics` adds up every process's files. Gauges
that describe the present — health, breaker state, the age of the oldest waiting
transaction — are read from the database and the breaker's store at scrape time instead,
so they are never stale or per-process.
"""

from __future__ import annotations

import glob
import hmac
import logging
import os
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateways.breaker import BreakerState, breaker_state
from gateways.models import Gateway
from payments.selectors import refund_counts, refund_oldest_open_age, transaction_oldest_waiting_ages
from webhooks.selectors import deliveries_state

logger = logging.getLogger(__name__)


class StateCollector(Collector):
    """Health and breaker state per gateway; the age of the oldest open transactions, refunds and deliveries."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        health = GaugeMetricFamily(
            "paygate_gateway_healthy", "1 if the gateway's health checks pass.", labels=["gateway", "status"]
        )
        breaker = GaugeMetricFamily(
            "paygate_gateway_breaker_open", "Circuit breaker: 0 closed, 0.5 half-open, 1 open.", labels=["gateway"]
        )
        for gateway in Gateway.objects.only("pk", "code", "health_status"):  # no credentials decrypted
            health.add_metric(
                [gateway.code, gateway.health_status], 1.0 if gateway.health_status != Gateway.Health.UNHEALTHY else 0.0
            )
            state = breaker_state(gateway.pk)
            breaker.add_metric(
                [gateway.code], {BreakerState.CLOSED: 0.0, BreakerState.HALF_OPEN: 0.5, BreakerState.OPEN: 1.0}[state]
            )
        yield health
        yield breaker
        oldest = GaugeMetricFamily(
            "paygate_oldest_transaction_age_seconds",
            "Age of the oldest transaction in a waiting status.",
            labels=["status"],
        )
        now = timezone.now()
        for status, age in transaction_oldest_waiting_ages(now=now).items():
            oldest.add_metric([status], age or 0.0)
        yield oldest
        refunds = GaugeMetricFamily("paygate_refunds", "Refunds by status.", labels=["status"])
        for status, count in refund_counts().items():
            refunds.add_metric([status], float(count))
        yield refunds
        yield GaugeMetricFamily(
            "paygate_refund_oldest_open_age_seconds",
            "Age of the oldest refund not final yet (0 if none).",
            value=refund_oldest_open_age(now=now),
        )
        deliveries = deliveries_state(now=now)
        yield GaugeMetricFamily(
            "paygate_webhook_oldest_undelivered_age_seconds",
            "Age of the oldest webhook delivery still pending (0 if none).",
            value=deliveries["oldest_pending_age_seconds"],
        )
        yield GaugeMetricFamily(
            "paygate_webhook_endpoints_failing",
            "Active webhook endpoints with a delivery waiting for a retry after a failed try.",
            value=float(deliveries["failing_endpoints"]),
        )


class AllHostsCollector(Collector):
    """Every process's samples from every host's subfolder of the metrics root, merged."""

    def collect(self) -> Iterator[Any]:
        files = glob.glob(os.path.join(settings.PROMETHEUS_METRICS_ROOT, "*", "*.db"))
        return iter(multiprocess.MultiProcessCollector.merge(files, accumulate=True))


def _scrape_refusal(request: HttpRequest) -> HttpResponse | None:
    """None when the scrape may proceed; 401 without the token, 404 when production has none."""
    token: str = settings.PAYGATE_METRICS_TOKEN
    if not token:
        if settings.DEBUG:
            return None
        # Production without a token: /metrics does not exist rather than being public.
        raise Http404
    scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return None
    response = HttpResponse("A bearer token is required.\n", status=401, content_type="text/plain; charset=utf-8")
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def metrics_view(request: HttpRequest) -> HttpResponse:
    refusal = _scrape_refusal(request)
    if refusal is not None:
        return refusal
    registry = CollectorRegistry()
    registry.register(AllHostsCollector())
    registry.register(StateCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
