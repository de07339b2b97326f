"""The log redactor: card numbers that stand alone are hidden, numbers that merely look long are kept."""

from __future__ import annotations

import json
import logging

import pytest

from core.logs import RedactingFilter, redact


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("pan 4111111111111111 end", "pan [REDACTED-PAN] end"),
        ("pan 4111 1111 1111 1111 end", "pan [REDACTED-PAN] end"),
        ("pan 4111-1111-1111-1111 end", "pan [REDACTED-PAN] end"),
        ("amex 378282246310005", "amex [REDACTED-PAN]"),
        ("visa 4222222222222", "visa [REDACTED-PAN]"),
        ("long 6011000990139424000", "long 6011000990139424000"),  # 19 digits, not Luhn-valid
        ("long 4000000000000000006", "long [REDACTED-PAN]"),
        ("the card was 4111111111111111.", "the card was [REDACTED-PAN]."),
        ("(4111111111111111)", "([REDACTED-PAN])"),
        ("card=4111111111111111&x=1", "card=[REDACTED-PAN]&x=1"),
        ("pan:4111111111111111", "pan:[REDACTED-PAN]"),
    ],
    ids=[
        "plain",
        "spaced",
        "dashed",
        "amex-15",
        "visa-13",
        "19-not-luhn",
        "19-luhn",
        "end-of-sentence",
        "parenthesised",
        "query-string",
        "after-colon",
    ],
)
def test_a_card_number_standing_alone_is_redacted(text: str, redacted: str) -> None:
    assert redact(text) == redacted


@pytest.mark.parametrize(
    "text",
    [
        "Task payments.process[abc] succeeded in 0.4111111111111111s: None",
        "took 12.4111111111111111 seconds",
        "ratio 4111111111111111.5",
        "order 4111111111111112 end",  # not Luhn-valid
        "a longer run 41111111111111111111 is no card",  # 20 digits
        "too short 411111111111",
    ],
    ids=["float-fraction", "fraction-after-whole", "float-whole-part", "not-luhn", "twenty-digits", "twelve-digits"],
)
def test_numbers_that_are_not_card_numbers_are_kept(text: str) -> None:
    assert redact(text) == text


def test_a_task_run_time_reaches_the_log_as_it_was() -> None:
    record = logging.LogRecord(
        "celery.app.trace",
        logging.INFO,
        __file__,
        1,
        "Task %s[%s] succeeded in %ss: %r",
        ("payments.process", "id-1", 0.4111111111111111, None),
        None,
    )
    RedactingFilter().filter(record)
    assert record.getMessage() == "Task payments.process[id-1] succeeded in 0.4111111111111111s: None"


def test_a_card_number_in_a_log_argument_is_still_redacted() -> None:
    record = logging.LogRecord(
        "payments", logging.WARNING, __file__, 1, "card %s after %ss", ("4111 1111 1111 1111", 0.25), None
    )
    RedactingFilter().filter(record)
    assert record.getMessage() == "card [REDACTED-PAN] after 0.25s"


def test_a_string_extra_is_redacted_like_the_message() -> None:
    from core.logs import JsonFormatter

    record = logging.LogRecord("gateways", logging.INFO, __file__, 1, "call failed", None, None)
    record.error = "declined: card 4111111111111111, iban DE89370400440532013000"
    record.latency_ms = 12.5

    line = json.loads(JsonFormatter().format(record))

    assert line["error"] == "declined: card [REDACTED-PAN], iban [REDACTED-IBAN]"
    assert line["latency_ms"] == 12.5


@pytest.mark.parametrize(
    ("reason", "masked"),
    [
        (None, "declined"),
        ("", "declined"),
        ("insufficient_funds", "insufficient_funds"),
        ("Card 4111 1111 1111 1111 refused", "Card [REDACTED-PAN] refused"),
        ("holder jane.roe@example.com blocked", "holder [REDACTED-EMAIL] blocked"),
        ("iban=DE89370400440532013000", "iban=[REDACTED-IBAN]"),
        ("line\nbreak\x00nul", "line break nul"),
        ("x" * 300, "x" * 100),
    ],
    ids=["none", "empty", "code", "pan", "email", "iban", "control", "long"],
)
def test_a_gateway_s_free_text_reason_is_masked(reason: str | None, masked: str) -> None:
    from core.logs import masked_reason

    assert masked_reason(reason, default="declined") == masked
