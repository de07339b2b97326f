"""Routing decisions: in which order a transaction's routes are tried. Pure: no database, no cache.

`selectors.route_list` reads the routes; this orders and filters them. A routing
strategy other than priority order belongs here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from .selectors import RouteChoice


def routes_order(routes: Iterable[RouteChoice], *, tried: Collection[int] = ()) -> list[RouteChoice]:
    """The routes to try now, in order: healthy ones whose gateway is not in `tried`, by priority.

    Equal priorities keep the order they came in. The circuit breaker is not asked here:
    asking a half-open breaker claims its single probe, so the caller asks it route by
    route, in this order, and stops at the first that lets the request through.
    """
    eligible = (route for route in routes if route.healthy and route.gateway_id not in tried)
    return sorted(eligible, key=lambda route: route.priority)
