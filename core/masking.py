"""The one masking rule, and which keys' values the log redactor hides or masks.

The rule is shared by the API, the admin, error bodies and the log redactor, so that a value
is never shown in one place with more characters than in another. Which keys are sensitive
is the business of the app that owns the data: it registers its tests of a key's name
(`log_keys_register`, from its AppConfig.ready) and this module applies them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Long enough to be a card or account number: the first four and last four are shown, which
# PCI DSS allows for a PAN, and the middle has a fixed width so the length is not told either.
MASK_LONG_FROM = 13
# Below this nothing is shown at all: a third of six characters would already be two.
MASK_NOTHING_BELOW = 7
_FILL = "*" * 8

_WORDS = re.compile(r"[A-Z]?[a-z]+\d*|[A-Z]+\d*(?![a-z])|\d+")

KeyTest = Callable[[str], bool]
_hidden: list[KeyTest] = []
_masked: list[KeyTest] = []


def mask_text(value: str) -> str:
    """13 characters or more: first four and last four. Fewer: at most a third, from the end.

    Under seven characters nothing is shown. A 9-digit routing number keeps its last three
    digits, a 10-digit account number its last three, a 12-character one its last four.
    """
    if len(value) >= MASK_LONG_FROM:
        return value[:4] + "*" * 12 + value[-4:]
    if len(value) < MASK_NOTHING_BELOW:
        return _FILL
    return _FILL + value[-(len(value) // 3) :]


def key_words(key: str) -> list[str]:
    """A key's words, lower-cased, whether it is written snake_case, camelCase or kebab-case:
    `user_name`, `userName` and `User-Name` all give ["user", "name"]; digits stay on their word."""
    return [word.lower() for word in _WORDS.findall(key)]


def key_joined(key: str) -> str:
    """A key lower-cased with everything but letters and digits left out (`Security-Code` → `securitycode`)."""
    return re.sub(r"[^a-z0-9]", "", key.lower())


def log_keys_register(*, hidden: KeyTest | None = None, masked: KeyTest | None = None) -> None:
    """Have the log redactor drop the values of keys `hidden` accepts, and mask those `masked` accepts."""
    if hidden is not None and hidden not in _hidden:
        _hidden.append(hidden)
    if masked is not None and masked not in _masked:
        _masked.append(masked)


def is_hidden_key(key: str) -> bool:
    """Whether a registered test says that a value under `key` must not be logged at all."""
    return any(test(key) for test in _hidden)


def is_masked_key(key: str) -> bool:
    """Whether a registered test says that a value under `key` is logged only masked."""
    return any(test(key) for test in _masked)
