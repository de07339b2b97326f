"""Page-number pagination whose `page` and `page_size` are validated as the schema describes them."""

from __future__ import annotations

import re
from typing import Any

from django.core.paginator import Paginator
from drf_spectacular.utils import OpenApiParameter
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

from .errors import ValidationFailed

MAX_PAGE_SIZE = 200
_POSITIVE_INTEGER = re.compile("[1-9][0-9]{0,17}")

# For `extend_schema(parameters=...)` of a list that uses `Pagination`.
PAGE_PARAMETERS = [
    OpenApiParameter(
        "page",
        {"type": "integer", "minimum": 1, "maximum": 10**18 - 1},
        OpenApiParameter.QUERY,
        description="1 for the first page (the default); a page past the last answers 404.",
    ),
    OpenApiParameter(
        "page_size",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
        OpenApiParameter.QUERY,
        description=f"Items per page, 1 to {MAX_PAGE_SIZE}.",
    ),
]


def _positive_int(request: Request, name: str, *, maximum: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not _POSITIVE_INTEGER.fullmatch(raw) or int(raw) > maximum:
        message = f"A whole number from 1 to {maximum}."
        raise ValidationFailed(f"{name}: {message}", fields={name: [message]})
    return int(raw)


class Pagination(PageNumberPagination):
    """DRF's, but strict: `page_size=0` or `page=abc` answer 400 rather than a default or a 404."""

    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request: Request) -> int | None:
        size = _positive_int(request, "page_size", maximum=MAX_PAGE_SIZE)
        return self.page_size if size is None else size

    def get_page_number(self, request: Request, paginator: Paginator[Any]) -> int | str:
        return _positive_int(request, "page", maximum=10**18 - 1) or 1
