"""Small statistics helpers (no numpy needed for percentiles of a few thousand values)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100), linear interpolation between closest ranks; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def summary(values: Sequence[float], *, qs: Sequence[float] = (50, 95, 99)) -> dict[str, float | int | None]:
    """count, mean, min, max and the given percentiles (keys p50, p95, ...), rounded to 3 decimals."""
    out: dict[str, float | int | None] = {"count": len(values)}
    if not values:
        out.update({"mean": None, "min": None, "max": None, **{f"p{q:g}": None for q in qs}})
        return out
    out["mean"] = round(sum(values) / len(values), 3)
    out["min"] = round(min(values), 3)
    out["max"] = round(max(values), 3)
    for q in qs:
        value = percentile(values, q)
        out[f"p{q:g}"] = None if value is None else round(value, 3)
    return out


def ratio(value: float | None, floor: float | None, digits: int = 3) -> float | None:
    if value is None or not floor:
        return None
    return round(value / floor, digits)


def per_second_series(times: Sequence[float], *, origin: float, bin_s: float = 1.0) -> list[int]:
    """Counts per `bin_s` bin of events at wall-clock `times`, from `origin`."""
    if not times:
        return []
    bins = [0] * (int(max(max(times) - origin, 0) // bin_s) + 1)
    for t in times:
        bins[max(int((t - origin) // bin_s), 0)] += 1
    return bins
