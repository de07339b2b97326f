"""OpenAPI descriptions shared by every app.

The one error body, and the errors any authenticated endpoint can answer.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ERROR_RESPONSE = inline_serializer(
    name="Error",
    fields={
        "error": inline_serializer(
            name="ErrorDetail",
            fields={
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "fields": serializers.DictField(),
            },
        )
    },
)

# Every endpoint behind an API key can answer these.
AUTHENTICATED_ERRORS = {
    401: OpenApiResponse(ERROR_RESPONSE, description="No, bad, revoked or expired API key"),
    405: OpenApiResponse(ERROR_RESPONSE, description="Method not allowed"),
    413: OpenApiResponse(ERROR_RESPONSE, description="Body too large"),
    429: OpenApiResponse(ERROR_RESPONSE, description="Rate limited; see the Retry-After header"),
    503: OpenApiResponse(ERROR_RESPONSE, description="Database unreachable for a moment; retry (Retry-After)"),
}
