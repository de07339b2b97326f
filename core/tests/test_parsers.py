"""The XML form of a body, as core.parsers reads it."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pytest
from rest_framework.exceptions import ParseError

from core.parsers import XMLParser


def parse(raw: bytes) -> Any:
    return XMLParser().parse(BytesIO(raw))


@pytest.mark.parametrize("raw", [b"<refund/>", b"<refund></refund>", b"<refund>\n  </refund>"])
def test_an_empty_root_element_is_the_empty_object(raw: bytes) -> None:
    assert parse(raw) == {}


def test_leaf_text_loses_xml_white_space_only() -> None:
    assert parse(b"<t><a>\n\t x \r\n</a><b>\xc2\xa0y\xe2\x80\x83</b></t>") == {"a": "x", "b": "\u00a0y\u2003"}


@pytest.mark.parametrize("raw", [b"<refund>text</refund>", b"<t><a>1</a><a>2</a></t>"], ids=["text-root", "twice"])
def test_what_is_not_an_object_is_refused(raw: bytes) -> None:
    with pytest.raises(ParseError):
        parse(raw)
