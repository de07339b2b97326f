"""Transactions, refunds and what customers did, counted where their state changes (core.metrics says how)."""

from __future__ import annotations

from prometheus_client import Counter

TRANSACTIONS_CREATED = Counter(
    "paygate_transactions_created_total", "Transactions accepted by the API.", ["type", "country"]
)
TRANSACTIONS_FINISHED = Counter(
    "paygate_transactions_finished_total",
    "Transactions that reached a final status.",
    ["type", "status", "country", "gateway", "failure_reason"],
)
REFUNDS_FINISHED = Counter(
    "paygate_refunds_finished_total", "Refunds that reached a final status.", ["gateway", "status", "failure_reason"]
)
PAYMENT_DETAILS_PURGED = Counter(
    "paygate_payment_details_purged_total",
    "Final transactions whose payment details were purged past the retention, leaving their masked form.",
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
