"""What gateways did when called: attempts by outcome and call latency (core.metrics says how they are collected)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ATTEMPTS = Counter("paygate_gateway_attempts_total", "Gateway attempts by outcome.", ["gateway", "outcome"])
GATEWAY_LATENCY = Histogram(
    "paygate_gateway_call_seconds",
    "Latency of gateway calls (payments and look-ups).",
    ["gateway", "operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
# One observation per payment call a gateway answered (or failed to): latency by gateway and
# country, and through `_count` by outcome, the accepted/declined vs fault split.
GATEWAY_PAYMENTS = Histogram(
    "paygate_gateway_payment_seconds",
    "Payment calls by gateway, country and outcome (accepted, declined, not_submitted, unknown), by latency.",
    ["gateway", "country", "outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
