"""The schemathesis hooks repair a drawn case into one the API must take, and leave a negative one alone."""

from __future__ import annotations

import io
import json
from datetime import date
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode

from apicheck.hooks import details_completed, map_case
from core.parsers import XMLParser
from payments.methods import method_details_errors
from testing.factories import CARD

PROPERTY = settings(max_examples=200, derandomize=True, deadline=None)


def case(body: Any, *, media_type: str = "application/json", mode: GenerationMode = GenerationMode.POSITIVE) -> Any:
    meta = SimpleNamespace(generation=SimpleNamespace(mode=mode))
    return SimpleNamespace(body=body, media_type=media_type, meta=meta)


@PROPERTY
@given(digits=st.text("0123456789", min_size=12, max_size=19))
def test_any_drawn_number_is_completed_to_a_valid_card(digits: str) -> None:
    body = {"payment_method": "card", "payment_details": {**CARD, "number": f" {digits} ", "exp_year": "1999"}}
    details = details_completed(body)["payment_details"]
    assert not method_details_errors("card", {k: v.strip() for k, v in details.items()}, today=date(2026, 6, 15))


def test_keys_that_one_xml_element_name_would_merge_are_renamed_apart_and_nul_dropped() -> None:
    drawn = {"metadata": {"ä": "1", "ö": {"a\x00": "2", "a": "3"}}}
    repaired = map_case(None, case(drawn, media_type="application/xml")).body  # type: ignore[arg-type]
    assert repaired == {"metadata": {"_": "1", "__1": {"a": "2", "a_1": "3"}}}
    assert map_case(None, case({"metadata": {"a\x00": "1"}})).body == {"metadata": {"a": "1"}}  # type: ignore[arg-type]


def test_metadata_is_fitted_below_the_limit_as_the_api_reads_the_xml_form() -> None:
    drawn = {"metadata": {f"k{n}": "é" * 300 for n in range(30)}}
    fitted = map_case(None, case(drawn, media_type="application/xml")).body["metadata"]  # type: ignore[arg-type]
    elements = "".join(f"<{key}>{value}</{key}>" for key, value in fitted.items())
    document = f"<transaction><metadata>{elements}</metadata></transaction>".encode()
    parsed = XMLParser().parse(io.BytesIO(document))
    assert fitted and len(json.dumps(parsed["metadata"], default=str)) <= 4096


def test_a_case_drawn_to_break_the_schema_is_left_as_drawn() -> None:
    drawn = {"metadata": {"a\x00": "1"}, "payment_method_id": "pm_x"}
    assert map_case(None, case(drawn, mode=GenerationMode.NEGATIVE)).body is drawn  # type: ignore[arg-type]
