"""Encrypted model fields on top of `fernet_fields` (django-fernet-fields-v2, keyed by FERNET_KEYS)."""

from __future__ import annotations

import json
from typing import Any

from fernet_fields import EncryptedTextField


class EncryptedJSONField(EncryptedTextField):  # type: ignore[misc]  # fernet_fields has no type hints
    """A JSON value stored as Fernet ciphertext: unreadable in the database and in dumps."""

    description = "Fernet-encrypted JSON"

    def get_prep_value(self, value: Any) -> Any:
        if value is None:
            return None
        return json.dumps(value, separators=(",", ":"), sort_keys=True)

    def to_python(self, value: Any) -> Any:
        if value is None or isinstance(value, (dict, list)):
            return value
        return json.loads(value)

    def value_to_string(self, obj: Any) -> str:
        return json.dumps(self.value_from_object(obj))
