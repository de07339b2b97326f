"""The gateway dashboard: the admin page an operator opens first."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import quantiles

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from gateways.breaker import breaker_state
from gateways.models import Gateway
from gateways.selectors import RouteScoreLine, route_score_lines
from payments.models import Attempt, AttemptOutcome, Transaction, TransactionStatus
from payments.selectors import transaction_oldest_waiting_ages

BUCKET_MINUTES = 5
BUCKETS = 12  # one hour
CHART_HEIGHT = 40
# The dashboard shows gateways and counts of transactions: both groups (operators, auditors) have these.
DASHBOARD_PERMISSIONS = ("gateways.view_gateway", "payments.view_transaction")


@dataclass
class Bucket:
    answered: int = 0
    faults: int = 0

    @property
    def total(self) -> int:
        return self.answered + self.faults


@dataclass
class RouteScores:
    label: str
    strategy: str
    lines: list[RouteScoreLine]


@dataclass
class GatewayStats:
    gateway: Gateway
    breaker: str
    attempts: int = 0
    accepted: int = 0
    declined: int = 0
    faults: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    buckets: list[Bucket] = field(default_factory=lambda: [Bucket() for _ in range(BUCKETS)])
    routes: list[str] = field(default_factory=list)
    # Each route with its country's strategy and its current scores (the success-rate window).
    route_scores: list[RouteScores] = field(default_factory=list)

    @property
    def success_rate(self) -> float | None:
        """Share of attempts the gateway answered (accepted or declined): its technical health."""
        return None if not self.attempts else 100.0 * (self.accepted + self.declined) / self.attempts

    @property
    def bars(self) -> list[dict[str, object]]:
        peak = max((b.total for b in self.buckets), default=0) or 1
        bars = []
        for index, bucket in enumerate(self.buckets):
            answered = CHART_HEIGHT * bucket.answered / peak
            faults = CHART_HEIGHT * bucket.faults / peak
            bars.append(
                {
                    "x": index * 10,
                    "answered_y": CHART_HEIGHT - answered,
                    "answered_h": answered,
                    "faults_y": CHART_HEIGHT - answered - faults,
                    "faults_h": faults,
                    "label": f"{bucket.answered} answered, {bucket.faults} faults",
                }
            )
        return bars


def dashboard_stats(*, now: datetime | None = None) -> list[GatewayStats]:
    now = now or timezone.now()
    since = now - timedelta(minutes=BUCKET_MINUTES * BUCKETS)
    gateways = Gateway.objects.prefetch_related("routes__country").order_by("code")
    stats = {g.pk: GatewayStats(gateway=g, breaker=str(breaker_state(g.pk))) for g in gateways}
    latencies: dict[int, list[float]] = {pk: [] for pk in stats}
    rows = Attempt.objects.filter(created_at__gte=since).values_list(
        "gateway_id", "outcome", "latency_ms", "created_at"
    )
    for gateway_id, outcome, latency_ms, created_at in rows.iterator(chunk_size=2000):
        entry = stats.get(gateway_id)
        if entry is None:
            continue
        entry.attempts += 1
        answered = outcome in (AttemptOutcome.ACCEPTED, AttemptOutcome.DECLINED)
        if outcome == AttemptOutcome.ACCEPTED:
            entry.accepted += 1
        elif outcome == AttemptOutcome.DECLINED:
            entry.declined += 1
        elif outcome != AttemptOutcome.PENDING:
            entry.faults += 1
        index = min(int((created_at - since).total_seconds() // (BUCKET_MINUTES * 60)), BUCKETS - 1)
        bucket = entry.buckets[index]
        if answered:
            bucket.answered += 1
        elif outcome != AttemptOutcome.PENDING:
            bucket.faults += 1
        if latency_ms is not None:
            latencies[gateway_id].append(latency_ms)
    for pk, values in latencies.items():
        if len(values) >= 2:
            cuts = quantiles(values, n=100, method="inclusive")
            stats[pk].p50_ms, stats[pk].p95_ms = cuts[49], cuts[94]
        elif values:
            stats[pk].p50_ms = stats[pk].p95_ms = values[0]
    lines = route_score_lines([route for entry in stats.values() for route in entry.gateway.routes.all()])
    for entry in stats.values():
        routes = sorted(entry.gateway.routes.all(), key=lambda r: (r.country.code, r.priority))
        entry.routes = [
            f"{route.country.code} #{route.priority}{'' if route.is_active else ' (off)'}" for route in routes
        ]
        entry.route_scores = [
            RouteScores(label=label, strategy=route.country.routing_strategy, lines=lines[route.pk])
            for label, route in zip(entry.routes, routes, strict=True)
        ]
    return list(stats.values())


def dashboard_view(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perms(DASHBOARD_PERMISSIONS):
        raise PermissionDenied
    now = timezone.now()
    waiting = transaction_oldest_waiting_ages(now=now)
    context = {
        **admin.site.each_context(request),
        "title": "Gateway dashboard",
        "stats": dashboard_stats(now=now),
        "chart_height": CHART_HEIGHT,
        "chart_width": BUCKETS * 10,
        "bucket_minutes": BUCKET_MINUTES,
        "oldest_pending_s": waiting[TransactionStatus.PENDING],
        "oldest_processing_s": waiting[TransactionStatus.PROCESSING],
        "oldest_requires_action_s": waiting[TransactionStatus.REQUIRES_ACTION],
        "needs_review": Transaction.objects.filter(needs_review=True).count(),
    }
    return TemplateResponse(request, "ops/dashboard.html", context)
