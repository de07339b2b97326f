"""Metrics, structured logs and redaction, checked on a real flow through the worker process."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from core.logs import ContextFilter, JsonFormatter, RedactingFilter, redact
from testing.factories import IBAN
from testing.metrics import sample, scrape, total
from testing.stack import LOG_DIR, Sandbox, wait_for

PAN = "4111111111111111"
DEPOSIT = {
    "customer_id": "cus_obs",
    "country": "DE",
    "amount": "30.00",
    "currency": "EUR",
    "payment_details": {"iban": IBAN, "card_number": PAN, "holder_name": "Jane Roe"},
}


@pytest.fixture
def json_log() -> Any:
    """Records of this process, through the production filters and formatter."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield buffer
    root.removeHandler(handler)


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (f"pan {PAN} end", "pan [REDACTED-PAN] end"),
        ("pan 4111 1111 1111 1111 end", "pan [REDACTED-PAN] end"),
        ("order 4111111111111112 end", "order 4111111111111112 end"),  # not Luhn-valid
        (f"iban {IBAN}", "iban [REDACTED-IBAN]"),
        ("iban DE89 3704 0044 0532 0130 00", "iban [REDACTED-IBAN]"),
        ("id 7c0e4f1a-uuid and 12345", "id 7c0e4f1a-uuid and 12345"),
    ],
    ids=["pan", "pan-spaced", "not-luhn", "iban", "iban-spaced", "harmless"],
)
def test_redaction(text: str, redacted: str) -> None:
    assert redact(text) == redacted


def test_redacting_filter_covers_arguments_and_exceptions(json_log: io.StringIO) -> None:
    log = logging.getLogger("payments.test")
    log.warning("details %s", {"iban": IBAN})
    try:
        raise ValueError(f"bad card {PAN}")
    except ValueError:
        log.exception("failed")
    output = json_log.getvalue()
    assert IBAN not in output and PAN not in output
    assert output.count("[REDACTED-") == 2


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_deposit_shows_in_metrics_and_every_log_line_carries_its_ids(
    api: Any, client: Any, stack: dict[str, Sandbox], json_log: io.StringIO
) -> None:
    before = scrape(client)
    response = api.post(
        "/api/v1/deposits", data=json.dumps(DEPOSIT), content_type="application/json", HTTP_X_REQUEST_ID="req-obs-1"
    )
    assert response["X-Request-Id"] == "req-obs-1"
    txn_id = response.json()["id"]
    done = wait_for(lambda: (b := api.get(f"/api/v1/transactions/{txn_id}").json())["status"] == "completed" and b)
    attempt = done["attempts"][0]["reference"]

    after = wait_for(
        lambda: (
            (s := scrape(client))
            and total(s, "paygate_callbacks_total", gateway="acmepay", result="applied")
            > total(before, "paygate_callbacks_total", gateway="acmepay", result="applied")
            and s
        ),
        message="the applied callback in /metrics",
    )

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("paygate_transactions_created_total", type="deposit", country="DE") == 1
    assert (
        delta(
            "paygate_transactions_finished_total", type="deposit", status="completed", country="DE", gateway="acmepay"
        )
        == 1
    )
    assert delta("paygate_gateway_attempts_total", gateway="acmepay", outcome="accepted") == 1
    assert delta("paygate_gateway_call_seconds_count", gateway="acmepay", operation="payment") == 1
    assert total(after, "paygate_gateway_healthy", gateway="acmepay") == 1
    assert total(after, "paygate_gateway_breaker_open", gateway="acmepay") == 0
    assert sample(after, "paygate_oldest_transaction_age_seconds", status="pending") is not None

    # This process: the API request and the callback (received by the live server).
    web_lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    created = [line for line in web_lines if line["message"] == "transaction created"]
    assert created and created[0]["transaction_id"] == txn_id and created[0]["request_id"] == "req-obs-1"
    # The callback is stored, answered, then applied here too, once its answer has gone out.
    callback_lines = wait_for(
        lambda: (
            (
                ls := [
                    line
                    for line in (json.loads(x) for x in json_log.getvalue().splitlines())
                    if line.get("attempt") == attempt and line["logger"].startswith("callbacks")
                ]
            )
            and any(line["message"] == "callback applied" for line in ls)
            and ls
        ),
        message="the callback to be applied by the web process",
    )
    assert all(line["gateway"] == "acmepay" for line in callback_lines)
    [applied] = [line for line in callback_lines if line["message"] == "callback applied"]
    assert applied["transaction_id"] == txn_id

    # The worker process: every line of ours about this transaction has all the ids.
    def worker_lines() -> list[dict[str, Any]]:
        lines = []
        for raw in (LOG_DIR / "worker.log").read_text().splitlines():
            if raw.startswith("{") and txn_id in raw:
                lines.append(json.loads(raw))
        return lines

    lines = wait_for(
        lambda: (ls := worker_lines()) and any("gateway answered" in x["message"] for x in ls) and ls,
        message="the worker's log lines",
    )
    ours = [line for line in lines if line["logger"].split(".")[0] in {"payments", "gateways", "callbacks", "core"}]
    messages = " | ".join(line["message"] for line in ours)
    assert "gateway answered accepted" in messages and "POST /payments" in messages, messages
    for line in ours:
        assert line["transaction_id"] == txn_id, line
        if line["logger"] != "payments.services" or "->" not in line["message"]:
            assert line.get("attempt") == attempt and line.get("gateway") == "acmepay", line
    assert any(line.get("request_id") == "req-obs-1" for line in ours)
    everything = (LOG_DIR / "worker.log").read_text() + json_log.getvalue()
    assert IBAN not in everything and PAN not in everything and "demo-acmepay" not in everything
