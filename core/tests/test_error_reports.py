"""Error reports (Django's debug page, e-mailed and logged reports) never show payment data or credentials."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from django.test import RequestFactory
from django.views.debug import ExceptionReporter, technical_500_response

from testing.factories import IBAN

PAN = "4111111111111111"
DB_PASSWORD = "db-password-in-the-url"
BROKER_PASSWORD = "broker-password-in-the-url"
API_KEY = "pk_live_key_of_a_gateway_42"


def fail_while_holding_payment_data() -> None:
    payment_details = {"iban": IBAN, "holder_name": "Jane Roe"}
    card_number = PAN
    api_key = API_KEY
    body = json.dumps({"amount": "25.00", "payment_details": payment_details}).encode()
    validated = {"amount": "25.00", "details": {"pan": PAN}}
    raise ValueError(f"gateway refused: {len(body)} {len(card_number)} {api_key[:0]} {validated['amount']}")


@pytest.fixture
def leaky_settings(settings: Any) -> Any:
    settings.DEBUG = True
    settings.DATABASE_URL = f"postgres://paygate:{DB_PASSWORD}@db:5432/paygate"
    settings.CELERY_BROKER_URL = f"redis://:{BROKER_PASSWORD}@redis:6379/0"
    settings.PAYGATE_CACHE_URL = f"redis://:{BROKER_PASSWORD}@redis:6379/0"
    return settings


def reports() -> list[str]:
    request = RequestFactory().post(
        "/api/v1/deposits",
        data={"iban": IBAN, "note": "hello"},
        HTTP_AUTHORIZATION=f"Api-Key {API_KEY}",
    )
    try:
        fail_while_holding_payment_data()
    except ValueError:
        exc_info = sys.exc_info()
    page = technical_500_response(request, *exc_info).content.decode()
    reporter = ExceptionReporter(request, *exc_info)
    return [page, reporter.get_traceback_text(), reporter.get_traceback_html()]


@pytest.mark.parametrize("secret", [IBAN, PAN, API_KEY, DB_PASSWORD, BROKER_PASSWORD], ids=str)
def test_reports_hide_payment_details_and_credentials_even_with_debug_on(leaky_settings: Any, secret: str) -> None:
    for report in reports():
        assert "fail_while_holding_payment_data" in report  # the report is there, its secrets are not
        assert secret not in report


def test_reports_still_show_what_helps_debugging(leaky_settings: Any) -> None:
    page = reports()[0]
    assert "gateway refused" in page and "hello" in page and "PAYGATE_MAX_BODY_BYTES" in page
