"""Routing decisions: in which order a transaction's routes are tried. Pure: no database, no cache.

`selectors.route_ranking` gathers the facts (the routes, the country's settings, the scores
from `scores`) and asks `routes_rank`, which orders them by the country's strategy
(CONTRACT §10):

- `priority`: the routes by priority (1 first).
- `success_rate`: the routes by their recent success rate for the country, currency and
  type. A route with fewer than `min_samples` outcomes in its window is scored at
  `default_score` (1.0 by default: optimistic, so that an untried route gets tried). Once
  it has been tried `min_samples` times (its calls answered) but fewer outcomes are known —
  payments complete by callback, later — its score is unknown and ties with any: it keeps
  its priority place instead of drawing every transaction until the callbacks arrive. A route
  goes ahead of a higher-priority one only when its score is better by more than the noise
  of the two estimates (one standard error of their difference): scores that the window
  cannot tell apart count as a tie, and ties keep priority order. A route whose recent p95
  latency exceeds `latency_threshold_ms` goes after every route that does not. On the first
  pick of a round a share `exploration` of transactions goes to another eligible route,
  chosen at random, so that every route's score stays fresh; failover within the round
  then follows the score order.

In every strategy unhealthy routes, and routes already tried in the current round, are
left out. The circuit breaker is not asked here: asking a half-open breaker claims its
single probe, so the caller asks it route by route, in this order, and stops at the first
that lets the request through.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Scores closer than this many standard errors of their difference count as a tie.
TIE_STANDARD_ERRORS = 1.0


class Strategy(enum.StrEnum):
    PRIORITY = "priority"
    SUCCESS_RATE = "success_rate"


@dataclass(frozen=True, slots=True)
class RouteChoice:
    gateway_id: int
    gateway_code: str
    priority: int
    healthy: bool


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    """A country's routing settings (`gateways.models.Country`); the defaults are the model's."""

    strategy: str = Strategy.PRIORITY
    window: int = 100  # at most this many recent outcomes per route...
    window_seconds: int = 600  # ...and, while the route has traffic, about this much of its recent time
    min_samples: int = 20
    default_score: float = 1.0
    exploration: float = 0.05
    latency_threshold_ms: int | None = None


@dataclass(frozen=True, slots=True)
class RouteScore:
    """What the shared store knows of one route's recent attempts (`gateways.scores`)."""

    samples: int = 0  # outcomes in the window
    successes: int = 0
    latency_samples: int = 0
    p95_ms: float | None = None

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.samples if self.samples else None


NO_SCORE = RouteScore()


@dataclass(frozen=True, slots=True)
class RouteView:
    """How the success-rate strategy saw one route."""

    route: RouteChoice
    score: float  # the score it was ranked by
    measured: bool  # False: too few samples, `score` is the default
    awaiting: bool  # tried enough, too few outcomes known yet: the score is unknown, a tie with any
    samples: int
    p95_ms: float | None
    slow: bool  # its p95 latency exceeds the country's threshold

    @property
    def variance(self) -> float:
        """Of the score's estimate; none for a default, as large as any for an unknown one.

        Smoothed so that 0% or 100% still has some.
        """
        if self.awaiting:
            return 1.0
        if not self.measured:
            return 0.0
        smoothed = (self.score * self.samples + 1) / (self.samples + 2)
        return smoothed * (1 - smoothed) / self.samples


@dataclass(frozen=True, slots=True)
class Ranking:
    """The routes to try now, in order, and why."""

    strategy: str
    order: tuple[RouteChoice, ...]
    views: Mapping[int, RouteView] = field(default_factory=dict)  # by gateway id; success_rate only
    explored: bool = False
    left_out: tuple[tuple[RouteChoice, str], ...] = ()  # ("unhealthy" | "tried")
    decided_in_us: int | None = None  # how long reading the facts and ordering took (set by the caller)

    def record(self, *, chosen: RouteChoice | None) -> dict[str, Any]:
        """The decision as an attempt keeps it (JSON): the routes in order, the one chosen, and why.

        The routes ahead of the chosen one were refused by their circuit breaker: the caller
        takes the first route in this order that its breaker lets through.
        """
        routes = []
        for route in self.order:
            entry: dict[str, Any] = {"gateway": route.gateway_code, "priority": route.priority}
            view = self.views.get(route.gateway_id)
            if view is not None:
                entry.update(
                    score=round(view.score, 4),
                    measured=view.measured,
                    awaiting=view.awaiting,
                    samples=view.samples,
                    p95_ms=None if view.p95_ms is None else round(view.p95_ms, 1),
                    slow=view.slow,
                )
            routes.append(entry)
        skipped = [{"gateway": route.gateway_code, "why": why} for route, why in self.left_out]
        if chosen is not None:
            ahead = self.order[: self.order.index(chosen)] if chosen in self.order else ()
            skipped += [{"gateway": route.gateway_code, "why": "breaker"} for route in ahead]
        record: dict[str, Any] = {
            "strategy": str(self.strategy),
            "chosen": chosen.gateway_code if chosen is not None else None,
            "explored": self.explored and chosen is not None and bool(self.order) and chosen == self.order[0],
            "routes": routes,
            "skipped": skipped,
        }
        if self.decided_in_us is not None:
            record["decided_in_us"] = self.decided_in_us
        return record


def routes_order(routes: Iterable[RouteChoice], *, tried: Collection[int] = ()) -> list[RouteChoice]:
    """The routes to try now by priority: healthy ones whose gateway is not in `tried`.

    Equal priorities keep the order they came in.
    """
    eligible = (route for route in routes if route.healthy and route.gateway_id not in tried)
    return sorted(eligible, key=lambda route: route.priority)


def routes_rank(
    routes: Iterable[RouteChoice],
    *,
    settings: RoutingSettings,
    scores: Mapping[int, RouteScore],
    draw: Callable[[], float],
    tried: Collection[int] = (),
) -> Ranking:
    """Order `routes` by the country's strategy; `scores` by gateway id, `draw` a uniform number in [0, 1).

    `draw` is called only when the strategy may explore: at most twice (whether to explore,
    and where to).
    """
    routes = list(routes)
    left_out = tuple(
        (route, "unhealthy" if not route.healthy else "tried")
        for route in sorted(routes, key=lambda r: r.priority)
        if not route.healthy or route.gateway_id in tried
    )
    eligible = routes_order(routes, tried=tried)
    if settings.strategy != Strategy.SUCCESS_RATE:
        return Ranking(strategy=Strategy.PRIORITY, order=tuple(eligible), left_out=left_out)

    views = {route.gateway_id: _view(route, scores.get(route.gateway_id, NO_SCORE), settings) for route in eligible}
    fast = [route for route in eligible if not views[route.gateway_id].slow]
    slow = [route for route in eligible if views[route.gateway_id].slow]
    order = _by_score(fast, views) + _by_score(slow, views)
    explored = False
    if not tried and len(order) > 1 and settings.exploration > 0 and draw() < settings.exploration:
        # Any route but the one the scores put first, each as likely.
        index = 1 + min(int(draw() * (len(order) - 1)), len(order) - 2)
        order = [order[index], *order[:index], *order[index + 1 :]]
        explored = True
    return Ranking(
        strategy=Strategy.SUCCESS_RATE, order=tuple(order), views=views, explored=explored, left_out=left_out
    )


def score_value(score: RouteScore, settings: RoutingSettings) -> tuple[float, bool]:
    """The score a route is ranked by, and whether it is measured (False: too few samples, the default)."""
    measured = score.samples >= settings.min_samples and score.samples > 0
    return (score.successes / score.samples if measured else settings.default_score), measured


def _view(route: RouteChoice, score: RouteScore, settings: RoutingSettings) -> RouteView:
    value, measured = score_value(score, settings)
    # Its calls are answered (a latency each) faster than its payments end (a callback each).
    awaiting = not measured and score.latency_samples >= settings.min_samples
    slow = (
        settings.latency_threshold_ms is not None
        and score.p95_ms is not None
        and score.latency_samples >= settings.min_samples
        and score.p95_ms > settings.latency_threshold_ms
    )
    return RouteView(
        route=route,
        score=value,
        measured=measured,
        awaiting=awaiting,
        samples=score.samples,
        p95_ms=score.p95_ms,
        slow=slow,
    )


def _by_score(routes: list[RouteChoice], views: Mapping[int, RouteView]) -> list[RouteChoice]:
    """Best score first; of the routes whose score cannot be told apart from the best, the highest priority.

    `routes` come in priority order. At each place, the best remaining score is found, and the
    first remaining route (by priority) within the noise of it takes the place.
    """
    remaining = list(routes)
    ordered = []
    while remaining:
        best = views[max(remaining, key=lambda route: views[route.gateway_id].score).gateway_id]
        place = next(route for route in remaining if _tied(views[route.gateway_id], best))
        ordered.append(place)
        remaining.remove(place)
    return ordered


def _tied(view: RouteView, best: RouteView) -> bool:
    margin = TIE_STANDARD_ERRORS * math.sqrt(view.variance + best.variance)
    return view.score >= best.score - margin
