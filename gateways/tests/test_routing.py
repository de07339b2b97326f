"""Route ordering, a pure function: no database, no cache, no breaker."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateways.routing import (
    RouteChoice,
    RouteScore,
    RoutingSettings,
    Strategy,
    routes_order,
    routes_rank,
)

SUCCESS_RATE = RoutingSettings(strategy=Strategy.SUCCESS_RATE, exploration=0.0)


def route(gateway_id: int, priority: int, *, healthy: bool = True) -> RouteChoice:
    return RouteChoice(gateway_id=gateway_id, gateway_code=f"g{gateway_id}", priority=priority, healthy=healthy)


def rate(
    successes: int, samples: int, *, p95_ms: float | None = None, latency_samples: int | None = None
) -> RouteScore:
    if latency_samples is None:
        latency_samples = samples if p95_ms is not None else 0
    return RouteScore(samples=samples, successes=successes, latency_samples=latency_samples, p95_ms=p95_ms)


def draws(*values: float) -> Callable[[], float]:
    """A random source that hands out these numbers, and fails the test if asked for more."""
    queue: Iterator[float] = iter(values)

    def draw() -> float:
        value = next(queue, None)
        assert value is not None, "drew more random numbers than expected"
        return value

    return draw


def never() -> float:
    raise AssertionError("the random source was asked")


def ids(routes: tuple[RouteChoice, ...] | list[RouteChoice]) -> list[int]:
    return [r.gateway_id for r in routes]


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
    ranking = routes_rank(routes, settings=RoutingSettings(), scores={}, draw=never, tried=tried)
    assert (ranking.strategy, ids(ranking.order), ranking.explored) == ("priority", expected, False)


def test_priority_ignores_scores_and_never_explores() -> None:
    routes = [route(1, 1), route(2, 2)]
    scores = {1: rate(10, 100), 2: rate(100, 100)}
    ranking = routes_rank(routes, settings=RoutingSettings(exploration=0.5), scores=scores, draw=never)
    assert ids(ranking.order) == [1, 2]
    assert ranking.record(chosen=routes[0]) == {
        "strategy": "priority",
        "chosen": "g1",
        "explored": False,
        "routes": [{"gateway": "g1", "priority": 1}, {"gateway": "g2", "priority": 2}],
        "skipped": [],
    }


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        pytest.param({}, [1, 2, 3], id="no-data-at-all-priority-order"),
        pytest.param({1: rate(180, 200), 2: rate(180, 200), 3: rate(180, 200)}, [1, 2, 3], id="exact-ties"),
        pytest.param({1: rate(150, 200), 2: rate(190, 200), 3: rate(170, 200)}, [2, 3, 1], id="clearly-better-first"),
        pytest.param(
            {1: rate(186, 200), 2: rate(190, 200), 3: rate(150, 200)}, [1, 2, 3], id="within-noise-keeps-priority"
        ),
        pytest.param({1: rate(900, 1000), 2: rate(950, 1000)}, [3, 2, 1], id="untried-optimistic-default-first"),
        pytest.param(
            {1: rate(150, 200), 2: rate(5, 10), 3: rate(170, 200)}, [2, 3, 1], id="too-few-samples-scored-default"
        ),
        pytest.param({1: rate(0, 200), 2: rate(0, 200), 3: rate(0, 200)}, [1, 2, 3], id="all-failing-priority"),
    ],
)
def test_success_rate_order(scores: dict[int, RouteScore], expected: list[int]) -> None:
    routes = [route(1, 1), route(2, 2), route(3, 3)]
    ranking = routes_rank(routes, settings=SUCCESS_RATE, scores=scores, draw=never)
    assert (ranking.strategy, ids(ranking.order), ranking.explored) == ("success_rate", expected, False)


def test_a_pessimistic_default_puts_untried_routes_last() -> None:
    settings_ = RoutingSettings(strategy=Strategy.SUCCESS_RATE, exploration=0.0, default_score=0.0)
    routes = [route(1, 1), route(2, 2)]
    ranking = routes_rank(routes, settings=settings_, scores={2: rate(100, 200)}, draw=never)
    assert ids(ranking.order) == [2, 1]
    assert ranking.views[1].measured is False and ranking.views[1].score == 0.0


def test_a_route_tried_enough_but_awaiting_its_outcomes_keeps_its_priority_place() -> None:
    routes = [route(1, 1), route(2, 2)]
    # Gateway 2 has answered 25 calls; only 3 of its payments have ended yet (the rest await their callbacks).
    awaiting = rate(3, 3, p95_ms=40, latency_samples=25)
    ranking = routes_rank(routes, settings=SUCCESS_RATE, scores={1: rate(190, 200), 2: awaiting}, draw=never)
    assert ids(ranking.order) == [1, 2]
    assert (ranking.views[2].measured, ranking.views[2].awaiting) == (False, True)
    # Untried (fewer answered calls than the minimum): the optimistic default sends it first.
    untried = rate(3, 3, p95_ms=40, latency_samples=19)
    assert ids(
        routes_rank(routes, settings=SUCCESS_RATE, scores={1: rate(190, 200), 2: untried}, draw=never).order
    ) == [
        2,
        1,
    ]
    # Awaiting with the higher priority: first, even before a better measured route.
    flipped = routes_rank(routes, settings=SUCCESS_RATE, scores={1: awaiting, 2: rate(199, 200)}, draw=never)
    assert ids(flipped.order) == [1, 2]


def test_min_samples_is_the_threshold_for_a_measured_score() -> None:
    settings_ = RoutingSettings(strategy=Strategy.SUCCESS_RATE, exploration=0.0, min_samples=50)
    routes = [route(1, 1), route(2, 2)]
    below = routes_rank(routes, settings=settings_, scores={1: rate(49, 49), 2: rate(10, 49)}, draw=never)
    assert (below.views[2].measured, below.views[2].score) == (False, 1.0)
    assert ids(below.order) == [1, 2]  # both at the default: a tie
    at = routes_rank(routes, settings=settings_, scores={1: rate(50, 50), 2: rate(10, 50)}, draw=never)
    assert (at.views[2].measured, at.views[2].score) == (True, 0.2)
    assert ids(at.order) == [1, 2]


@pytest.mark.parametrize(
    ("threshold", "scores", "expected"),
    [
        pytest.param(None, {1: rate(190, 200, p95_ms=900), 2: rate(150, 200, p95_ms=50)}, [1, 2], id="no-threshold"),
        pytest.param(300, {1: rate(190, 200, p95_ms=900), 2: rate(150, 200, p95_ms=50)}, [2, 1], id="slow-goes-last"),
        pytest.param(300, {1: rate(190, 200, p95_ms=300), 2: rate(150, 200, p95_ms=50)}, [1, 2], id="at-threshold-ok"),
        pytest.param(
            300,
            {1: rate(190, 200, p95_ms=900, latency_samples=5), 2: rate(150, 200, p95_ms=50)},
            [1, 2],
            id="too-few-latencies-to-judge",
        ),
        pytest.param(
            300,
            {1: rate(190, 200, p95_ms=900), 2: rate(150, 200, p95_ms=800), 3: rate(100, 200, p95_ms=20)},
            [3, 1, 2],
            id="slow-ones-ordered-by-score-after-the-fast",
        ),
        pytest.param(
            300, {1: rate(190, 200, p95_ms=900), 2: rate(150, 200, p95_ms=900)}, [1, 2], id="all-slow-by-score"
        ),
    ],
)
def test_latency_ceiling(threshold: int | None, scores: dict[int, RouteScore], expected: list[int]) -> None:
    settings_ = RoutingSettings(strategy=Strategy.SUCCESS_RATE, exploration=0.0, latency_threshold_ms=threshold)
    routes = [route(gateway_id, gateway_id) for gateway_id in sorted(scores)]
    assert ids(routes_rank(routes, settings=settings_, scores=scores, draw=never).order) == expected


def test_unhealthy_and_tried_routes_are_left_out_and_said_so() -> None:
    routes = [route(1, 1, healthy=False), route(2, 2), route(3, 3)]
    ranking = routes_rank(routes, settings=SUCCESS_RATE, scores={}, draw=never, tried={2})
    assert ids(ranking.order) == [3]
    assert ranking.record(chosen=routes[2])["skipped"] == [
        {"gateway": "g1", "why": "unhealthy"},
        {"gateway": "g2", "why": "tried"},
    ]


def test_every_route_unhealthy_leaves_nothing_to_try() -> None:
    routes = [route(1, 1, healthy=False), route(2, 2, healthy=False)]
    ranking = routes_rank(routes, settings=RoutingSettings(strategy=Strategy.SUCCESS_RATE), scores={}, draw=never)
    assert ranking.order == ()
    record = ranking.record(chosen=None)
    assert (record["chosen"], record["explored"], record["routes"]) == (None, False, [])
    assert [s["why"] for s in record["skipped"]] == ["unhealthy", "unhealthy"]


def test_exploration_sends_a_share_to_another_route() -> None:
    explore = RoutingSettings(strategy=Strategy.SUCCESS_RATE, exploration=0.05)
    routes = [route(1, 1), route(2, 2), route(3, 3)]
    scores = {1: rate(190, 200), 2: rate(150, 200), 3: rate(100, 200)}
    stay = routes_rank(routes, settings=explore, scores=scores, draw=draws(0.05))
    assert (ids(stay.order), stay.explored) == ([1, 2, 3], False)
    # Whether to explore, then where: the second draw picks among the others, each as likely.
    second = routes_rank(routes, settings=explore, scores=scores, draw=draws(0.049, 0.0))
    assert (ids(second.order), second.explored) == ([2, 1, 3], True)
    third = routes_rank(routes, settings=explore, scores=scores, draw=draws(0.0, 0.5))
    assert (ids(third.order), third.explored) == ([3, 1, 2], True)
    edge = routes_rank(routes, settings=explore, scores=scores, draw=draws(0.0, 0.999999))
    assert ids(edge.order) == [3, 1, 2]
    assert third.record(chosen=third.order[0])["explored"] is True
    # The explored route's breaker refused it: the transaction went where the scores said.
    assert third.record(chosen=third.order[1]) | {"routes": None} == {
        "strategy": "success_rate",
        "chosen": "g1",
        "explored": False,
        "routes": None,
        "skipped": [{"gateway": "g3", "why": "breaker"}],
    }


@pytest.mark.parametrize(
    ("routes", "tried", "exploration"),
    [
        pytest.param([route(1, 1)], (), 0.5, id="one-route"),
        pytest.param([route(1, 1), route(2, 2)], (), 0.0, id="exploration-off"),
        pytest.param([route(1, 1), route(2, 2), route(3, 3)], {1}, 0.5, id="failover-follows-the-scores"),
        pytest.param([route(1, 1), route(2, 2, healthy=False)], (), 0.5, id="nowhere-else-healthy"),
    ],
)
def test_no_exploration(routes: list[RouteChoice], tried: set[int], exploration: float) -> None:
    settings_ = RoutingSettings(strategy=Strategy.SUCCESS_RATE, exploration=exploration)
    ranking = routes_rank(routes, settings=settings_, scores={}, draw=never, tried=tried)
    assert ranking.explored is False


def test_failover_after_an_explored_route_follows_the_score_order() -> None:
    explore = RoutingSettings(strategy=Strategy.SUCCESS_RATE, exploration=0.05)
    routes = [route(1, 1), route(2, 2), route(3, 3)]
    scores = {1: rate(190, 200), 2: rate(150, 200), 3: rate(100, 200)}
    first = routes_rank(routes, settings=explore, scores=scores, draw=draws(0.0, 0.9))
    assert ids(first.order) == [3, 1, 2]
    # Gateway 3 did not act: the next pick of the round is the score order without it.
    then = routes_rank(routes, settings=explore, scores=scores, draw=never, tried={3})
    assert ids(then.order) == [1, 2]


def test_the_record_shows_the_scores_seen() -> None:
    settings_ = RoutingSettings(strategy=Strategy.SUCCESS_RATE, exploration=0.0, latency_threshold_ms=200)
    routes = [route(1, 1), route(2, 2)]
    scores = {1: rate(140, 200, p95_ms=250.04), 2: rate(3, 3, p95_ms=40)}
    ranking = routes_rank(routes, settings=settings_, scores=scores, draw=never)
    assert ranking.record(chosen=routes[1]) == {
        "strategy": "success_rate",
        "chosen": "g2",
        "explored": False,
        "routes": [
            {
                "gateway": "g2",
                "priority": 2,
                "score": 1.0,
                "measured": False,
                "awaiting": False,
                "samples": 3,
                "p95_ms": 40.0,
                "slow": False,
            },
            {
                "gateway": "g1",
                "priority": 1,
                "score": 0.7,
                "measured": True,
                "awaiting": False,
                "samples": 200,
                "p95_ms": 250.0,
                "slow": True,
            },
        ],
        "skipped": [],
    }


# --- properties -------------------------------------------------------------------------------------

scores_st = st.builds(
    lambda samples, share, p95, latencies: RouteScore(
        samples=samples, successes=round(samples * share), latency_samples=latencies, p95_ms=p95
    ),
    st.integers(0, 500),
    st.floats(0, 1),
    st.one_of(st.none(), st.floats(1, 5000)),
    st.integers(0, 500),
)
routes_st = st.lists(st.tuples(st.integers(1, 5), st.booleans()), min_size=0, max_size=6).map(
    lambda items: [route(index + 1, priority, healthy=healthy) for index, (priority, healthy) in enumerate(items)]
)
settings_st = st.builds(
    RoutingSettings,
    strategy=st.just(Strategy.SUCCESS_RATE),
    min_samples=st.integers(1, 100),
    default_score=st.floats(0, 1),
    exploration=st.sampled_from([0.0, 0.05, 0.5]),
    latency_threshold_ms=st.one_of(st.none(), st.integers(1, 3000)),
)


@settings(max_examples=300, deadline=None)
@given(
    routes=routes_st,
    scores=st.dictionaries(st.integers(1, 6), scores_st),
    settings_=settings_st,
    tried=st.sets(st.integers(1, 6)),
    draw_values=st.lists(st.floats(0, 1, exclude_max=True), min_size=2, max_size=2),
)
def test_ranking_properties(
    routes: list[RouteChoice],
    scores: dict[int, RouteScore],
    settings_: RoutingSettings,
    tried: set[int],
    draw_values: list[float],
) -> None:
    ranking = routes_rank(routes, settings=settings_, scores=scores, draw=draws(*draw_values), tried=tried)
    eligible = [r for r in routes if r.healthy and r.gateway_id not in tried]
    # Exactly the eligible routes, each once; the rest accounted for.
    assert sorted(ids(ranking.order)) == sorted(ids(eligible))
    assert sorted(ids([r for r, _ in ranking.left_out])) == sorted(set(ids(routes)) - set(ids(eligible)))
    # The same facts and the same draws give the same order.
    again = routes_rank(routes, settings=settings_, scores=scores, draw=draws(*draw_values), tried=tried)
    assert again.order == ranking.order
    if ranking.explored:
        # Exploring moves one other route to the front; the rest keep the order of the scores.
        assert not tried and len(eligible) > 1
        plain = routes_rank(
            routes, settings=dataclasses.replace(settings_, exploration=0.0), scores=scores, draw=never, tried=tried
        )
        assert ranking.order[0] != plain.order[0]
        assert [r for r in plain.order if r != ranking.order[0]] == list(ranking.order[1:])
    slow = [ranking.views[r.gateway_id].slow for r in ranking.order[ranking.explored :]]
    # No route over the latency ceiling before one under it (the explored one aside).
    assert slow == sorted(slow)
    if eligible and not ranking.explored:
        head = ranking.views[ranking.order[0].gateway_id]
        group = [ranking.views[r.gateway_id] for r in eligible if ranking.views[r.gateway_id].slow == head.slow]
        best = max(view.score for view in group)
        # The first route is the best scored, or one that the window cannot tell apart from it.
        assert head.score >= best - 3 * max(v.variance for v in group) ** 0.5 - 1e-12
    views = ranking.views.values()
    if all(not view.measured and not view.slow for view in views) and not ranking.explored:
        # Nothing measured (and no latency ceiling crossed): the default score or unknown, in priority order.
        assert ids(ranking.order) == ids(routes_order(routes, tried=tried))


@settings(max_examples=200, deadline=None)
@given(
    samples=st.integers(20, 400),
    shares=st.lists(st.floats(0, 1), min_size=2, max_size=5),
)
def test_a_route_goes_ahead_of_a_higher_priority_one_only_when_clearly_better(
    samples: int, shares: list[float]
) -> None:
    routes = [route(index + 1, index + 1) for index in range(len(shares))]
    scores = {r.gateway_id: rate(round(samples * share), samples) for r, share in zip(routes, shares, strict=True)}
    ranking = routes_rank(routes, settings=SUCCESS_RATE, scores=scores, draw=never)
    for ahead, behind in itertools.combinations(ranking.order, 2):
        if ahead.priority > behind.priority:
            assert ranking.views[ahead.gateway_id].score > ranking.views[behind.gateway_id].score
