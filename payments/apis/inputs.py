"""What more than one resource reads from a request: ISO codes, amounts, the Idempotency-Key header."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.request import Request

from core.errors import ValidationFailed
from core.schema import not_blank_line_pattern
from core.serializers import StrictCharField


class CodeField(StrictCharField):
    """An ISO code as the standard writes it: `length` upper-case letters A to Z, nothing around them."""

    def __init__(self, *, length: int, **kwargs: Any) -> None:
        pattern = RegexValidator(rf"^[A-Z]{{{length}}}\Z", f"Must be {length} upper-case letters A to Z.")
        super().__init__(trim_whitespace=False, validators=[pattern], **kwargs)


class AmountField(serializers.Field):  # its schema: payments/schema.py
    """Kept raw here; checked against the currency's minor units by the serializer that has the currency."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, (bool, float)) or not isinstance(data, (str, int, Decimal)):
            raise serializers.ValidationError('Must be a decimal string such as "25.00".')
        return data

    def to_representation(self, value: Any) -> str:
        return str(value)


IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": not_blank_line_pattern()},
    OpenApiParameter.HEADER,
    required=False,
    description="At most 255 characters. The same key with the same body replays the original answer; "
    "with a different body it answers 409.",
)

_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f]")


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key.strip() or len(key) > 255:
        raise ValidationFailed(
            "Idempotency-Key must be 1 to 255 characters.", fields={"Idempotency-Key": ["Invalid length."]}
        )
    if _CONTROL_CHARACTERS.search(key):
        raise ValidationFailed(
            "Idempotency-Key may not contain control characters.",
            fields={"Idempotency-Key": ["Control characters are not allowed."]},
        )
    return key
