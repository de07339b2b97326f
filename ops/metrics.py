"""`/metrics`: the counters of every process (each app's `metrics`), and gauges read at scrape time.

Counters and histograms are defined in each app's `metrics` module and `core.metrics`, in
prometheus_client's multiprocess mode; `/metrics` adds up every process's files. Gauges
that describe the present — health, breaker state, routes available per country, what
waits and for how long, queue lengths, when queues and periodic tasks last moved — are read
from the database, the shared cache and the broker at scrape time instead, so they are
never stale or per-process. The alerting rules built on them are in `ops/prometheus/`.
"""

from __future__ import annotations

import glob
import hmac
import logging
import os
from collections.abc import Iterator
from typing import Any

from axes.models import AccessAttempt
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from callbacks.models import CallbackEvent
from core.queues import pipeline_backlog, queue_names
from core.taskmetrics import queues_last_consumed, tasks_last_succeeded
from gateways.breaker import BreakerState, breaker_state
from gateways.models import TRANSACTION_TYPES, Gateway, GatewayRoute
from payments.selectors import (
    refund_counts,
    refund_oldest_open_age,
    refund_review_count,
    transaction_oldest_waiting_ages,
    transaction_waiting_counts,
)
from webhooks.selectors import deliveries_state

from .schedule import periodic_task_intervals

logger = logging.getLogger(__name__)


_BREAKER_VALUES = {BreakerState.CLOSED: 0.0, BreakerState.HALF_OPEN: 0.5, BreakerState.OPEN: 1.0}


class StateCollector(Collector):
    """The present, read at scrape time from the database, the cache and the broker.

    Per gateway its health and breaker; per country and type how many routes could take a
    payment now; how many transactions, refunds, callbacks and webhook deliveries wait and how long the oldest has; how
    long each queue is and when a worker last took a task from it; when each periodic task
    last ran to the end, beside its interval.
    """

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._gateways()
        yield from self._transactions()
        yield from self._callbacks()
        yield from self._admin()
        yield from self._queues()
        yield from self._periodic_tasks()

    def _gateways(self) -> Iterator[GaugeMetricFamily]:
        health = GaugeMetricFamily(
            "paygate_gateway_healthy", "1 if the gateway's health checks pass.", labels=["gateway", "status"]
        )
        breaker = GaugeMetricFamily(
            "paygate_gateway_breaker_open", "Circuit breaker: 0 closed, 0.5 half-open, 1 open.", labels=["gateway"]
        )
        usable: dict[int, bool] = {}
        for gateway in Gateway.objects.only("pk", "code", "health_status", "is_active"):  # no credentials decrypted
            healthy = gateway.health_status != Gateway.Health.UNHEALTHY
            health.add_metric([gateway.code, gateway.health_status], 1.0 if healthy else 0.0)
            state = breaker_state(gateway.pk)
            breaker.add_metric([gateway.code], _BREAKER_VALUES[state])
            # Half-open lets a probe through: the route is not written off yet.
            usable[gateway.pk] = gateway.is_active and healthy and state != BreakerState.OPEN
        yield health
        yield breaker
        routes = GaugeMetricFamily(
            "paygate_country_routes",
            "Active routes of active gateways per country and type.",
            labels=["country", "type"],
        )
        available = GaugeMetricFamily(
            "paygate_country_available_routes",
            "Of those routes, how many could take a payment now (gateway healthy, breaker not open).",
            labels=["country", "type"],
        )
        counts: dict[tuple[str, str], list[int]] = {}
        active = GatewayRoute.objects.filter(is_active=True, gateway__is_active=True)
        for country, gateway_id, types in active.values_list("country__code", "gateway_id", "transaction_types"):
            for type_ in types or TRANSACTION_TYPES:
                count = counts.setdefault((country, type_), [0, 0])
                count[0] += 1
                count[1] += 1 if usable.get(gateway_id) else 0
        for (country, type_), (total, up) in sorted(counts.items()):
            routes.add_metric([country, type_], float(total))
            available.add_metric([country, type_], float(up))
        yield routes
        yield available

    def _transactions(self) -> Iterator[GaugeMetricFamily]:
        waiting = GaugeMetricFamily(
            "paygate_transactions_waiting", "Transactions in a waiting (non-final) status.", labels=["status"]
        )
        for status, count in transaction_waiting_counts().items():
            waiting.add_metric([status], float(count))
        yield waiting
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
            "paygate_refunds_needing_review",
            "Refunds still processing past the deadline that the gateway may have accepted: a person settles them.",
            value=float(refund_review_count()),
        )
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

    def _admin(self) -> Iterator[GaugeMetricFamily]:
        since = timezone.now() - settings.AXES_COOLOFF_TIME
        locked = AccessAttempt.objects.filter(
            failures_since_start__gte=settings.AXES_FAILURE_LIMIT, attempt_time__gte=since
        ).count()
        yield GaugeMetricFamily(
            "paygate_admin_lockouts",
            "Admin usernames or addresses locked out now after failed logins (django-axes).",
            value=float(locked),
        )

    def _callbacks(self) -> Iterator[GaugeMetricFamily]:
        received = CallbackEvent.objects.filter(result=CallbackEvent.Result.RECEIVED)
        yield GaugeMetricFamily(
            "paygate_callbacks_unapplied", "Stored callbacks not applied yet.", value=float(received.count())
        )
        first = received.order_by("received_at").values_list("received_at", flat=True).first()
        yield GaugeMetricFamily(
            "paygate_callback_oldest_unapplied_age_seconds",
            "Age of the oldest stored callback not applied yet; 0 if none.",
            value=(timezone.now() - first).total_seconds() if first else 0.0,
        )

    def _queues(self) -> Iterator[GaugeMetricFamily]:
        length = GaugeMetricFamily(
            "paygate_celery_queue_length", "Tasks waiting in the broker's queue.", labels=["queue"]
        )
        consumed = GaugeMetricFamily(
            "paygate_celery_queue_last_consumed_timestamp_seconds",
            "When a worker last started a task from the queue, or monitoring first looked (unix time).",
            labels=["queue"],
        )
        queues = queue_names()
        for queue in queues:
            backlog = pipeline_backlog(queue)
            if backlog is not None:  # the broker cannot say: no sample rather than a false one
                length.add_metric([queue], float(backlog))
        for queue, stamp in sorted(queues_last_consumed(queues).items()):
            consumed.add_metric([queue], stamp)
        yield length
        yield consumed

    def _periodic_tasks(self) -> Iterator[GaugeMetricFamily]:
        interval = GaugeMetricFamily(
            "paygate_periodic_task_interval_seconds",
            "How often celery-beat publishes the periodic task (enabled ones with an interval schedule).",
            labels=["task"],
        )
        succeeded = GaugeMetricFamily(
            "paygate_periodic_task_last_success_timestamp_seconds",
            "When a run of the periodic task last succeeded, or monitoring first looked (unix time).",
            labels=["task"],
        )
        every = periodic_task_intervals()
        for task, seconds in sorted(every.items()):
            interval.add_metric([task], seconds)
        for task, stamp in sorted(tasks_last_succeeded(every).items()):
            succeeded.add_metric([task], stamp)
        yield interval
        yield succeeded


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
