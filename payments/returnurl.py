"""The merchant's `return_url` (CONTRACT §11): where the customer's browser goes at the end.

Paygate redirects a browser only to a URL it got from a gateway's answer or to this stored
one, so it is checked once, strictly, when the deposit is created: by the same pattern the
OpenAPI schema states (payments.schema.return_url_pattern).
"""

from __future__ import annotations

import re
from functools import cache

from django.conf import settings

from .schema import return_url_pattern


@cache
def _compiled(https_only: bool) -> re.Pattern[str]:
    return re.compile(return_url_pattern(https_only=https_only)[1:-1])


def return_url_problem(value: str) -> str | None:
    """Why `value` is not an acceptable return_url, or None."""
    if _compiled(not settings.DEBUG).fullmatch(value):
        return None
    if settings.DEBUG:
        return "Must be an absolute http(s) URL: printable ASCII, no credentials, spaces or backslashes."
    return "Must be an absolute https URL: printable ASCII, no credentials, spaces or backslashes."
