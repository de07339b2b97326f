"""What the pay page's browsers report (core.metrics says how metrics are collected)."""

from __future__ import annotations

from prometheus_client import Counter

# Content-Security-Policy violations browsers reported from the pay page (PCI DSS 11.6.1), by the
# directive that was violated; `other` for a directive name Paygate does not know.
CSP_VIOLATIONS = Counter(
    "paygate_csp_violations_total",
    "CSP violation reports received from the pay page, by violated directive.",
    ["directive"],
)
