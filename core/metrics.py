"""Prometheus metrics of the infrastructure; each app defines its own in its `metrics` module.

Counters and histograms use prometheus_client's multiprocess mode: every process writes
its samples to files in PROMETHEUS_MULTIPROC_DIR (set in settings, emptied when the stack
starts; one subfolder per host) and `/metrics` (`ops.metrics`) adds them up, whichever
module defined them. Labels are bounded sets (gateway codes, countries, statuses), never ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Failed API keys and bad callback signatures: `limited` once an address is over its limit (429).
AUTH_FAILURES = Counter(
    "paygate_auth_failures_total",
    "Failed API keys (api_key) and bad callback signatures (callback_signature): counted (401) or limited (429).",
    ["kind", "result"],
)
# From publication (or the countdown's end) to a worker starting the task: the queue's delay.
TASK_WAIT = Histogram(
    "paygate_celery_task_wait_seconds",
    "Time a task waited in its queue before a worker started it.",
    ["queue", "task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0),
)
