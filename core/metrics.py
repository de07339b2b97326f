"""Prometheus metric definitions, counted where things happen; `ops.metrics` reads and serves them.

Counters and histograms use prometheus_client's multiprocess mode: every process writes
its samples to files in PROMETHEUS_MULTIPROC_DIR (set in settings, emptied when the stack
starts; one subfolder per host) and `/metrics` adds them up. Labels are bounded sets
(gateway codes, countries, statuses), never ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

TRANSACTIONS_CREATED = Counter(
    "paygate_transactions_created_total", "Transactions accepted by the API.", ["type", "country"]
)
TRANSACTIONS_FINISHED = Counter(
    "paygate_transactions_finished_total",
    "Transactions that reached a final status.",
    ["type", "status", "country", "gateway", "failure_reason"],
)
ATTEMPTS = Counter("paygate_gateway_attempts_total", "Gateway attempts by outcome.", ["gateway", "outcome"])
GATEWAY_LATENCY = Histogram(
    "paygate_gateway_call_seconds",
    "Latency of gateway calls (payments and look-ups).",
    ["gateway", "operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
REFUNDS_FINISHED = Counter(
    "paygate_refunds_finished_total", "Refunds that reached a final status.", ["gateway", "status", "failure_reason"]
)
WEBHOOK_DELIVERIES = Counter(
    "paygate_webhook_deliveries_total",
    "Tries of webhook deliveries: succeeded, retry (failed, to be tried again) or failed (given up).",
    ["result"],
)
CALLBACKS = Counter("paygate_callbacks_total", "Gateway callbacks by result.", ["gateway", "result"])
# Failed API keys and bad callback signatures: `limited` once an address is over its limit (429).
AUTH_FAILURES = Counter(
    "paygate_auth_failures_total",
    "Failed API keys (api_key) and bad callback signatures (callback_signature): counted (401) or limited (429).",
    ["kind", "result"],
)
PAYMENT_DETAILS_PURGED = Counter(
    "paygate_payment_details_purged_total",
    "Final transactions whose payment details were purged past the retention, leaving their masked form.",
)
# One observation per payment call a gateway answered (or failed to): latency by gateway and
# country, and through `_count` by outcome, the accepted/declined vs fault split.
GATEWAY_PAYMENTS = Histogram(
    "paygate_gateway_payment_seconds",
    "Payment calls by gateway, country and outcome (accepted, declined, not_submitted, unknown), by latency.",
    ["gateway", "country", "outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
# CONTRACT §11's conversion funnel, per gateway and country: `presented` (the gateway asked the
# customer to act), `forwarded` (the pay page sent the customer to the gateway, or showed the
# code), `returned` (the customer came back through the return endpoint), then how those
# transactions ended: `completed`, `cancelled`, `expired`, `failed` (declined or failed otherwise).
CUSTOMER_ACTIONS = Counter(
    "paygate_customer_actions_total",
    "Customer actions by stage: presented, forwarded, returned, completed, cancelled, expired, failed.",
    ["gateway", "country", "stage"],
)
# Content-Security-Policy violations browsers reported from the pay page (PCI DSS 11.6.1), by the
# directive that was violated; `other` for a directive name Paygate does not know.
CSP_VIOLATIONS = Counter(
    "paygate_csp_violations_total",
    "CSP violation reports received from the pay page, by violated directive.",
    ["directive"],
)
# From publication (or the countdown's end) to a worker starting the task: the queue's delay.
TASK_WAIT = Histogram(
    "paygate_celery_task_wait_seconds",
    "Time a task waited in its queue before a worker started it.",
    ["queue", "task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0),
)
