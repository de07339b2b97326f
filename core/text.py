"""Text that PostgreSQL cannot store: NUL (U+0000) and unpaired surrogates (U+D800–U+DFFF).

PostgreSQL refuses NUL in `text` and `\\u0000` in `jsonb`, and UTF-8 cannot encode a lone
surrogate, which JSON's `\\ud800` escape produces. SQLite takes both, so a check that only
ran there would never notice. Inputs refuse such text with a 400; evidence that must be
kept whatever it holds (a signed callback) is stored escaped instead.
"""

from __future__ import annotations

import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

UNSTORABLE_MESSAGE = "Text may not contain NUL characters (U+0000) or unpaired surrogates (U+D800 to U+DFFF)."


def is_storable(text: str) -> bool:
    return _UNSTORABLE.search(text) is None


def escape_unstorable(text: str) -> str:
    """`a\\x00b` → `a\\\\x00b`, a lone surrogate → `\\\\udXXX`: readable, and storable anywhere."""
    if is_storable(text):
        return text
    return _UNSTORABLE.sub(lambda match: match.group().encode("unicode_escape", "backslashreplace").decode(), text)


def first_unstorable(value: Any, path: str = "") -> str | None:
    """The path (`metadata.k`, `items[2]`) of the first key or string in `value` that cannot be stored."""
    if isinstance(value, str):
        return path if not is_storable(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and not is_storable(key):
                return escape_unstorable(child)
            found = first_unstorable(item, child)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = first_unstorable(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None
