"""CSP violation reports (PCI DSS v4.0 11.6.1): the pay page's CSP names this endpoint.

Browsers post `application/csp-report` (`report-uri`) or `application/reports+json` (`report-to`).
Each report is logged (the page's URL without its query: the pay page's token never reaches the
logs) and counted in `paygate_csp_violations_total`; the alert `PaygateCspViolations` watches it.
The answer is always an empty 204, whatever arrives: a report changes nothing but the log and the count.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt

from .metrics import CSP_VIOLATIONS
from .ratelimit import pay_page_allowed

logger = logging.getLogger(__name__)

MAX_REPORT_BYTES = 16 * 1024
MAX_REPORTS = 20
KNOWN_DIRECTIVES = frozenset(
    {
        "default-src",
        "script-src",
        "script-src-elem",
        "script-src-attr",
        "style-src",
        "style-src-elem",
        "style-src-attr",
        "img-src",
        "font-src",
        "connect-src",
        "object-src",
        "base-uri",
        "frame-ancestors",
        "form-action",
        "frame-src",
        "child-src",
        "worker-src",
        "manifest-src",
        "media-src",
        "require-trusted-types-for",
        "trusted-types",
    }
)


def _text(value: Any, limit: int = 300) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _without_query(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0]


def csp_reports_parse(body: bytes) -> list[dict[str, str]]:
    """The violations in a report body of either format, each as `directive`, `blocked`, `page`."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []
    items: list[dict[str, Any]] = []
    if isinstance(data, dict) and isinstance(data.get("csp-report"), dict):
        legacy: dict[str, Any] = data["csp-report"]
        items.append(
            {
                "directive": legacy.get("effective-directive") or legacy.get("violated-directive"),
                "blocked": legacy.get("blocked-uri"),
                "page": legacy.get("document-uri"),
            }
        )
    elif isinstance(data, list):
        for entry in data[:MAX_REPORTS]:
            if not isinstance(entry, dict) or entry.get("type") != "csp-violation":
                continue
            entry_body = entry.get("body")
            report: dict[str, Any] = entry_body if isinstance(entry_body, dict) else {}
            items.append(
                {
                    "directive": report.get("effectiveDirective"),
                    "blocked": report.get("blockedURL"),
                    "page": report.get("documentURL") or entry.get("url"),
                }
            )
    violations = []
    for item in items:
        directive = _text(item["directive"], 60).split(" ", 1)[0].lower()
        violations.append(
            {
                "directive": directive if directive in KNOWN_DIRECTIVES else "other",
                "blocked": _without_query(_text(item["blocked"])),
                "page": _without_query(_text(item["page"])),
            }
        )
    return violations


@csrf_exempt  # browsers post reports without any token, by design
def csp_report(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not pay_page_allowed(request):
        return HttpResponse(status=429)
    body = request.body[: MAX_REPORT_BYTES + 1]
    if len(body) <= MAX_REPORT_BYTES:
        for violation in csp_reports_parse(body):
            CSP_VIOLATIONS.labels(directive=violation["directive"]).inc()
            logger.warning(
                "csp violation reported: %s blocked %s on %s",
                violation["directive"],
                violation["blocked"] or "(inline)",
                violation["page"],
                extra={"csp": violation},
            )
    return HttpResponse(status=204)
