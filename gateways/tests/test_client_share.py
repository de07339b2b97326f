"""One client's share of a route's success-rate window is capped (PAYGATE_ROUTING_CLIENT_SHARE):
a merchant's hundred declines on purpose cannot move a country's traffic for every merchant."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from gateways.models import Gateway
from gateways.scores import ScoreKey, scores_forget, scores_read
from gateways.services import country_routing_set, route_score_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(demo: None) -> Iterator[ScoreKey]:
    country_routing_set(country_code="DE", strategy="success_rate", window=20, min_samples=5)
    score_key = ScoreKey(
        gateway_id=Gateway.objects.get(code="acmepay").pk, country="DE", currency="EUR", transaction_type="deposit"
    )
    scores_forget([score_key])
    yield score_key
    scores_forget([score_key])


def fresh_client_id() -> int:
    """A client no earlier run counted for within the shared store's current period."""
    return 10**6 + secrets.randbelow(10**9)


def _outcomes(key: ScoreKey, *, client_id: int, success: bool, count: int, capture: Any) -> None:
    with capture(execute=True):
        for _ in range(count):
            route_score_record(
                gateway_id=key.gateway_id,
                country=key.country,
                currency=key.currency,
                transaction_type=key.transaction_type,
                success=success,
                latency_ms=40.0,
                client_id=client_id,
            )


def test_one_client_fills_at_most_its_share_of_the_window(
    key: ScoreKey, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.PAYGATE_ROUTING_CLIENT_SHARE = 0.5
    merchant, attacker = fresh_client_id(), fresh_client_id()
    _outcomes(key, client_id=merchant, success=True, count=10, capture=django_capture_on_commit_callbacks)

    _outcomes(key, client_id=attacker, success=False, count=100, capture=django_capture_on_commit_callbacks)

    score = scores_read([key])[key]
    assert (score.samples, score.successes) == (20, 10)  # 10 of the attacker's 100: half the window
    assert score.success_rate == 0.5  # not the 0.09 its hundred declines would have made it
    assert score.latency_samples == 20  # past its share nothing of the attacker's counts


def test_a_share_of_one_turns_the_cap_off(
    key: ScoreKey, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.PAYGATE_ROUTING_CLIENT_SHARE = 1.0

    _outcomes(key, client_id=fresh_client_id(), success=False, count=30, capture=django_capture_on_commit_callbacks)

    assert scores_read([key])[key].samples == 20  # the window's own size


def test_the_cap_is_on_unless_debug_is() -> None:
    from paygate import settings as module

    assert module.PAYGATE_ROUTING_CLIENT_SHARE == (1.0 if module.DEBUG else 0.5)
