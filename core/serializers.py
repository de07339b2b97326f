"""Strict reading of what a client sends: a body with no unknown field, values of the type given.

DRF is lenient where the API must not be: it drops fields it does not know (a misspelt
`payment_methd` would be silently ignored), turns `5` into "5" and "yes" into true, and reads
`?status=` as no filter at all.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from rest_framework import serializers

from .errors import ValidationFailed


class StrictInput(serializers.Serializer):  # type: ignore[type-arg]
    """A request body: an object, with none but the declared fields (each unknown one named in the 400)."""

    def to_internal_value(self, data: Any) -> Any:
        return super().to_internal_value(self.strict_body(data))

    def strict_body(self, data: Any) -> dict[str, Any]:
        """The body, refused unless it is an object of declared fields; a subclass adds checks of
        raw values that must come before the fields read them."""
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["The body must be an object."]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return data


class QueryFilters(serializers.Serializer):  # type: ignore[type-arg]
    """Query filters: DRF reads `?status=` as no filter at all, but the schema's filters have no empty value."""

    @classmethod
    def read(cls, query: Mapping[str, Any], *, also: Collection[str] = ()) -> dict[str, Any]:
        """The filters given in `query`, validated; a parameter that is neither a filter nor one of `also`
        (read elsewhere, such as the page) is a 400 rather than ignored."""
        unknown = sorted(set(query) - set(cls().fields) - set(also))
        if unknown:
            raise ValidationFailed(
                "Unknown query parameter.", fields={name: ["Unknown parameter."] for name in unknown}
            )
        filters = cls(data=query)
        filters.is_valid(raise_exception=True)
        return dict(filters.validated_data)

    def to_internal_value(self, data: Any) -> Any:
        blank = sorted(name for name in data if name in self.fields and data.get(name) == "")
        if blank:
            raise serializers.ValidationError({name: ["May not be blank."] for name in blank})
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A string, and only a string: numbers and booleans are refused, not converted."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false: JSON's booleans, or their text in XML; not DRF's "1", "yes", "on"...."""

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        if self.context.get("xml") and data in ("true", "false"):
            return bool(data == "true")
        raise serializers.ValidationError("Must be true or false.")
