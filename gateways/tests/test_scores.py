"""The shared store of route scores: the ring of buckets, its Redis script and its Python twin."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings

from gateways import scores
from gateways.routing import NO_SCORE
from gateways.scores import BINS, BUCKETS, LATENCY_BOUNDS_MS, ScoreKey, Window, percentile

KEY = ScoreKey(gateway_id=1, country="DE", currency="EUR", transaction_type="deposit")
OTHER = ScoreKey(gateway_id=2, country="DE", currency="EUR", transaction_type="deposit")


@pytest.fixture
def fresh() -> Iterator[None]:
    scores.scores_forget([KEY, OTHER])
    yield
    scores.scores_forget([KEY, OTHER])


def totals_match_buckets(ring: dict[str, float]) -> None:
    for total, prefix in (("N", "n"), ("S", "s"), ("L", "l")):
        assert ring.get(total, 0) == sum(ring.get(f"{prefix}{b}", 0) for b in range(BUCKETS))
    for index in range(BINS):
        assert ring.get(f"H{index}", 0) == sum(ring.get(f"h{b}.{index}", 0) for b in range(BUCKETS))


@pytest.mark.parametrize(
    ("histogram", "quantile", "expected"),
    [
        pytest.param([0] * BINS, 0.95, None, id="empty"),
        pytest.param([0, 0, 10] + [0] * (BINS - 3), 0.5, 37.5, id="interpolated-inside-its-bin"),
        pytest.param([0, 0, 10] + [0] * (BINS - 3), 0.95, 48.75, id="p95-of-one-bin"),
        pytest.param([19, 0, 0, 0, 1] + [0] * (BINS - 5), 0.95, 10.0, id="p95-still-in-the-fast-bin"),
        pytest.param([18, 0, 0, 0, 2] + [0] * (BINS - 5), 0.95, 87.5, id="p95-in-the-slow-bin"),
        pytest.param([0] * (BINS - 1) + [3], 0.95, float(LATENCY_BOUNDS_MS[-1]), id="open-ended-last-bin"),
    ],
)
def test_percentile(histogram: list[int], quantile: float, expected: float | None) -> None:
    assert percentile(histogram, quantile) == expected


def test_latency_bins() -> None:
    assert [scores.latency_bin(ms) for ms in (0, 10, 10.01, 49, 10_000, 10_001)] == [0, 0, 1, 2, 16, 17]


def test_a_bucket_closes_on_count_and_the_window_slides() -> None:
    window = Window(size=100, seconds=3600)  # buckets of 10 outcomes
    ring: dict[str, float] = {}
    for index in range(95):
        scores._advance(ring, now=1000.0 + index * 0.01, window=window, outcome=1, bin_=-1)
    assert ring["N"] == ring["S"] == 95
    for index in range(200):
        scores._advance(ring, now=1001.0 + index * 0.01, window=window, outcome=0, bin_=2)
        totals_match_buckets(ring)
        # The window holds between 90% and 100% of its size once full.
        assert 90 <= ring["N"] <= 100
    assert ring["S"] == 0 and ring["N"] == ring["L"]


def test_a_bucket_closes_on_age_and_a_quiet_route_keeps_its_score() -> None:
    window = Window(size=1000, seconds=100)  # buckets of 100 outcomes or 10 s
    ring: dict[str, float] = {}
    for second in range(0, 100, 2):
        scores._advance(ring, now=float(second), window=window, outcome=0, bin_=-1)
    assert ring["N"] == 50  # ten buckets of 10 s, five outcomes each
    scores._advance(ring, now=100.0, window=window, outcome=1, bin_=-1)
    assert (ring["N"], ring["S"]) == (46, 1)  # the oldest bucket made room
    # An hour of silence: the next outcome opens one bucket, the rest of the window stays.
    scores._advance(ring, now=3700.0, window=window, outcome=1, bin_=-1)
    assert (ring["N"], ring["S"]) == (42, 2)
    totals_match_buckets(ring)


def test_record_and_read_on_the_configured_cache(fresh: None) -> None:
    window = Window(size=200, seconds=600)
    for index in range(30):
        scores.score_record(KEY, window=window, success=index % 3 != 0, latency_ms=40 + index)
    scores.score_record(KEY, window=window, latency_ms=5000)  # a latency alone
    scores.score_record(OTHER, window=window, success=False)
    read = scores.scores_read([KEY, OTHER, ScoreKey(gateway_id=3, country="DE", currency="EUR", transaction_type="x")])
    assert (read[KEY].samples, read[KEY].successes, read[KEY].latency_samples) == (30, 20, 31)
    assert read[KEY].success_rate == pytest.approx(2 / 3)
    assert read[KEY].p95_ms is not None and 60 < read[KEY].p95_ms <= 100
    assert (read[OTHER].samples, read[OTHER].successes, read[OTHER].p95_ms) == (1, 0, None)
    assert read[ScoreKey(gateway_id=3, country="DE", currency="EUR", transaction_type="x")] == NO_SCORE
    scores.scores_forget([KEY])
    assert scores.scores_read([KEY])[KEY] == NO_SCORE


@pytest.mark.services
def test_the_redis_script_and_its_python_twin_agree(fresh: None) -> None:
    cache = caches[scores.CACHE]
    client = scores._redis(cache)  # type: ignore[arg-type]
    rng = random.Random(15)
    window = Window(size=37, seconds=5)
    ring: dict[str, float] = {}
    now = 1_000_000.0
    for _ in range(600):
        now += rng.choice([0.01, 0.1, 0.7, 3.0])
        success = rng.choice([None, True, False])
        latency = rng.choice([None, rng.uniform(1, 12_000)])
        if success is None and latency is None:
            continue
        scores.score_record(KEY, window=window, success=success, latency_ms=latency, now=now)
        scores._advance(
            ring,
            now=now,
            window=window,
            outcome=-1 if success is None else int(success),
            bin_=-1 if latency is None else scores.latency_bin(latency),
        )
    stored = {k.decode(): float(v) for k, v in client.hgetall(cache.make_and_validate_key(KEY.name)).items()}
    expected = {k: float(v) for k, v in ring.items() if v != 0 or k in ("b", "t")}
    stored = {k: v for k, v in stored.items() if v != 0 or k in ("b", "t")}
    assert stored == expected
    totals_match_buckets(ring)
    assert client.ttl(cache.make_and_validate_key(KEY.name)) > 0


UNREACHABLE: dict[str, Any] = {
    "default": {
        "BACKEND": "core.cache.ReusedClientRedisCache",
        "LOCATION": "redis://127.0.0.1:9/0",
        "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
    }
}


def test_an_unreachable_store_loses_samples_and_reads_unscored(caplog: pytest.LogCaptureFixture) -> None:
    with override_settings(CACHES=UNREACHABLE):
        scores.score_record(KEY, window=Window(size=100, seconds=60), success=True, latency_ms=10)
        assert scores.scores_read([KEY]) == {KEY: NO_SCORE}
    assert "route score store unavailable" in caplog.text
