"""The routing simulation's scenarios, its oracle and its statistics: pure, no stack.

A scenario says, for every moment, each gateway's decline rate and latency (piecewise
linear between knots). `bench/simulate.py` plays it on the sandboxes, sends the same
deposits to two twin countries routed to the same gateways — one on `priority`, one on
`success_rate` — and then judges each transaction against the scenario: the *expected*
success of a transaction is one minus the decline rate of the gateway it went to, at the
moment it was routed; the *oracle* would have sent it to the gateway with the lowest decline
rate at that moment.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

# What the two strategies share: DE's demo routes (CONTRACT §5).
GATEWAYS = ("acmepay", "soapbank")
ROUTES = (("acmepay", 1), ("soapbank", 2))


@dataclass(frozen=True)
class Curve:
    """A value over time: linear between (second, value) knots, constant before the first and after the last."""

    knots: tuple[tuple[float, float], ...]

    def at(self, t: float) -> float:
        times = [knot[0] for knot in self.knots]
        index = bisect.bisect_right(times, t)
        if index == 0:
            return self.knots[0][1]
        if index == len(self.knots):
            return self.knots[-1][1]
        (t0, v0), (t1, v1) = self.knots[index - 1], self.knots[index]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def flat(value: float) -> Curve:
    return Curve(((0.0, value),))


@dataclass(frozen=True)
class GatewayBehaviour:
    decline_rate: Curve
    latency_ms: Curve

    def at(self, t: float) -> tuple[float, int]:
        """The sandbox mode at second `t`: decline rate to the percent, latency to the millisecond."""
        return round(self.decline_rate.at(t), 2), round(self.latency_ms.at(t))


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    duration_s: float
    gateways: dict[str, GatewayBehaviour]
    # The twin countries: (code, name), the first on priority, the second on success_rate.
    countries: tuple[tuple[str, str], tuple[str, str]]
    notes: str = ""
    degraded: tuple[float, float] | None = None  # shaded on the chart

    def conditions(self, t: float) -> dict[str, tuple[float, int]]:
        return {code: behaviour.at(t) for code, behaviour in self.gateways.items()}

    def scaled(self, factor: float) -> Scenario:
        """The same story in `factor` of the time (a smoke run)."""

        def scale(curve: Curve) -> Curve:
            return Curve(tuple((t * factor, v) for t, v in curve.knots))

        return Scenario(
            name=self.name,
            title=self.title,
            duration_s=self.duration_s * factor,
            gateways={
                code: GatewayBehaviour(scale(b.decline_rate), scale(b.latency_ms)) for code, b in self.gateways.items()
            },
            countries=self.countries,
            notes=self.notes,
            degraded=None if self.degraded is None else (self.degraded[0] * factor, self.degraded[1] * factor),
        )


# DE's first-priority gateway degrades from 5% to 30% declines (and gets slower) for about three
# minutes, then recovers; the second gateway declines 8% throughout and drifts a little slower.
DRIFT = Scenario(
    name="drift",
    title="acmepay degrades from 5% to 30% declines for three minutes, then recovers",
    duration_s=330,
    gateways={
        "acmepay": GatewayBehaviour(
            decline_rate=Curve(((45, 0.05), (60, 0.30), (225, 0.30), (240, 0.05))),
            latency_ms=Curve(((45, 40), (60, 90), (225, 90), (240, 40))),
        ),
        "soapbank": GatewayBehaviour(decline_rate=flat(0.08), latency_ms=Curve(((0, 60), (330, 80)))),
    },
    countries=(("DE", "Germany"), ("AT", "Austria")),
    degraded=(45, 240),
)
# Nothing changes: what exploration and noisy scores cost.
STEADY = Scenario(
    name="steady",
    title="nothing changes: acmepay 5% declines, soapbank 8%",
    duration_s=120,
    gateways={
        "acmepay": GatewayBehaviour(decline_rate=flat(0.05), latency_ms=flat(40)),
        "soapbank": GatewayBehaviour(decline_rate=flat(0.08), latency_ms=flat(60)),
    },
    countries=(("FR", "France"), ("BE", "Belgium")),
)
# Equal declines; acmepay answers in 450 ms for 50 s, above the success_rate country's 300 ms ceiling.
LATENCY = Scenario(
    name="latency",
    title="acmepay slows to 450 ms for 50 s (latency ceiling 300 ms); both decline 5%",
    duration_s=75,
    gateways={
        "acmepay": GatewayBehaviour(
            decline_rate=flat(0.05), latency_ms=Curve(((15, 40), (16, 450), (65, 450), (66, 40)))
        ),
        "soapbank": GatewayBehaviour(decline_rate=flat(0.05), latency_ms=flat(60)),
    },
    countries=(("IT", "Italy"), ("ES", "Spain")),
    degraded=(15, 66),
)
SCENARIOS = (DRIFT, STEADY, LATENCY)


# --- judging the transactions --------------------------------------------------------------------


@dataclass
class Timeline:
    """The sandbox modes as they were applied: (wall time, {gateway: (decline rate, latency ms)})."""

    changes: list[tuple[float, dict[str, tuple[float, int]]]] = field(default_factory=list)

    def add(self, at: float, conditions: dict[str, tuple[float, int]]) -> None:
        self.changes.append((at, dict(conditions)))

    def at(self, wall: float) -> dict[str, tuple[float, int]]:
        index = bisect.bisect_right([change[0] for change in self.changes], wall)
        return self.changes[max(index - 1, 0)][1]


def expected_success(conditions: dict[str, tuple[float, int]], gateway: str) -> float:
    return 1.0 - conditions[gateway][0]


def oracle_success(conditions: dict[str, tuple[float, int]]) -> float:
    return 1.0 - min(decline for decline, _ in conditions.values())


# --- statistics ------------------------------------------------------------------------------------

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


def difference_ci(s1: int, n1: int, s2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """p2 − p1 of two independent proportions and its normal-approximation interval."""
    p1, p2 = s1 / n1, s2 / n2
    half = z * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    return (p2 - p1, p2 - p1 - half, p2 - p1 + half)


def quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def recovery_ci(
    priority: tuple[int, int], success_rate: tuple[int, int], gap: float, *, resamples: int = 4000, seed: int = 15
) -> tuple[float, float]:
    """95% parametric-bootstrap interval of (observed success_rate − observed priority) / gap.

    Each side is (successes, n); its resampled rate is Binomial(n, observed rate) / n.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    (s1, n1), (s2, n2) = priority, success_rate
    draws = (rng.binomial(n2, s2 / n2, resamples) / n2 - rng.binomial(n1, s1 / n1, resamples) / n1) / gap
    low, high = np.quantile(draws, [0.025, 0.975])
    return float(low), float(high)
