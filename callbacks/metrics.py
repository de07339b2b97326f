"""Gateway callbacks by what became of them (core.metrics says how metrics are collected)."""

from __future__ import annotations

from prometheus_client import Counter

CALLBACKS = Counter("paygate_callbacks_total", "Gateway callbacks by result.", ["gateway", "result"])
