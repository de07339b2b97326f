"""The schema's text patterns read as validation reads text, in Python's `re` and in JSON Schema alike."""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from core.parsers import XML_WHITE_SPACE
from core.schema import _SPACE, one_of_pattern, stripped_text_pattern, xml_text_pattern

PROPERTY = settings(max_examples=400, derandomize=True, deadline=None)

# White space of every kind, NUL, and ordinary characters, drawn often enough to meet each other.
TRICKY = st.sampled_from(list("\x00\t\n\x0b\r\x1c\x1f \x85\xa0\u1680\u2000\u200a\u2028\u202f\u3000\ufeffa-é"))
TEXT = st.text(TRICKY | st.characters(codec="utf-8"), max_size=12)


def json_schema_accepts(pattern: str, value: str) -> bool:
    return bool(jsonschema_rs.is_valid({"type": "string", "pattern": pattern}, value))


def test_white_space_is_what_str_strip_removes() -> None:
    """The class must be exactly str.isspace(), which ECMA's \\s is not (U+FEFF, U+001C-U+001F, U+0085)."""
    every = [chr(code) for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF]
    stripped = {char for char in every if char.isspace()}
    assert {char for char in every if re.fullmatch(_SPACE, char)} == stripped
    assert {char for char in stripped | set("\ufeff\u200b") if json_schema_accepts(f"^{_SPACE}$", char)} == stripped


@pytest.mark.parametrize(
    ("min_length", "max_length", "allow_blank"), [(1, 100, False), (0, 255, True), (1, 1, False), (1, 3, False)]
)
@PROPERTY
@given(value=TEXT)
@example(value="  a  ")
@example(value=" \u3000 ")
@example(value="a\x00")
@example(value="\ufeffa")
def test_stripped_text_pattern_is_drfs_char_field(
    min_length: int, max_length: int, allow_blank: bool, value: str
) -> None:
    field: serializers.CharField[Any] = serializers.CharField(max_length=max_length, allow_blank=allow_blank)
    try:
        field.run_validation(value)
        accepted = True
    except serializers.ValidationError:
        accepted = False
    pattern = stripped_text_pattern(min_length=min_length, max_length=max_length)
    assert (re.fullmatch(pattern, value) is not None) == accepted
    assert json_schema_accepts(pattern, value) == accepted


@PROPERTY
@given(value=TEXT)
@example(value="\t DE\r\n")
@example(value="\u00a0DE")
def test_xml_text_pattern_allows_what_the_xml_parser_strips(value: str) -> None:
    pattern = xml_text_pattern("^[A-Z]{2}$")
    accepted = re.fullmatch("[A-Z]{2}", value.strip(XML_WHITE_SPACE)) is not None
    assert (re.fullmatch(pattern, value) is not None) == accepted
    assert json_schema_accepts(pattern, value) == accepted


def test_one_of_pattern_takes_words_only() -> None:
    assert re.fullmatch(one_of_pattern(["EUR", "USD"]), "USD")
    assert not re.fullmatch(one_of_pattern(["EUR", "USD"]), "EURUSD")
    with pytest.raises(ValueError, match="escaping"):
        one_of_pattern(["a.b"])
