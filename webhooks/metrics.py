"""Webhook delivery tries by result (core.metrics says how metrics are collected)."""

from __future__ import annotations

from prometheus_client import Counter

WEBHOOK_DELIVERIES = Counter(
    "paygate_webhook_deliveries_total",
    "Tries of webhook deliveries: succeeded, retry (failed, to be tried again) or failed (given up).",
    ["result"],
)
