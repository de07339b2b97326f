"""Route ordering, a pure function: no database, no cache, no breaker."""

from __future__ import annotations

import pytest

from gateways.routing import routes_order
from gateways.selectors import RouteChoice


def route(gateway_id: int, priority: int, *, healthy: bool = True) -> RouteChoice:
    return RouteChoice(gateway_id=gateway_id, gateway_code=f"g{gateway_id}", priority=priority, healthy=healthy)


@pytest.mark.parametrize(
    ("routes", "tried", "expected"),
    [
        pytest.param([route(1, 1), route(2, 2)], (), [1, 2], id="priority-1-first"),
        pytest.param([route(2, 2), route(1, 1)], (), [1, 2], id="ordered-by-priority-not-by-position"),
        pytest.param([route(3, 1), route(1, 1), route(2, 1)], (), [3, 1, 2], id="equal-priorities-keep-their-order"),
        pytest.param([route(1, 1, healthy=False), route(2, 2)], (), [2], id="unhealthy-skipped"),
        pytest.param([route(1, 1), route(2, 2)], {1}, [2], id="tried-this-round-skipped"),
        pytest.param([route(1, 1), route(2, 2, healthy=False)], {1}, [], id="nothing-left"),
        pytest.param([], (), [], id="no-routes"),
    ],
)
def test_routes_order(routes: list[RouteChoice], tried: set[int], expected: list[int]) -> None:
    assert [r.gateway_id for r in routes_order(routes, tried=tried)] == expected
