"""Payment methods on the real stack (CONTRACT §12): details reach the JSON and SOAP sandboxes, a
payout reaches its IBAN, routes serve their methods, and nothing stores a card number in clear."""

from __future__ import annotations

import functools
import json
import os
import subprocess
from typing import Any

import pytest
from django.db import connection

import testing.api
from gateways.models import GatewayRoute
from testing.factories import CARD, IBAN, deposit_body
from testing.stack import Sandbox, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BANK = {"iban": IBAN, "holder_name": "Jo"}
DEPOSIT = deposit_body(payment_details=None, metadata=None)
FINAL = {"completed", "failed"}


create = functools.partial(testing.api.create, body=DEPOSIT)


def wait_final(api: Any, txn_id: str) -> dict[str, Any]:
    return dict(
        wait_for(
            lambda: (body := api.get(f"/api/v1/transactions/{txn_id}").json())["status"] in FINAL and body,
            timeout=30,
            message=f"transaction {txn_id} to finish",
        )
    )


def received(box: Sandbox, txn_id: str) -> list[dict[str, Any]]:
    return [p for p in box.payments() if p["transaction_id"] == txn_id]


def test_a_card_deposit_reaches_the_json_sandbox_with_its_details(api: Any, stack: dict[str, Sandbox]) -> None:
    txn = create(api, payment_method="card", payment_details=CARD)
    done = wait_final(api, txn["id"])
    assert (done["status"], done["gateway"]) == ("completed", "acmepay")
    [payment] = received(stack["acmepay"], txn["id"])
    assert payment["payment_method"] == "card"
    assert payment["payment_details"] == {
        "number": "4242",
        "exp_month": "12",
        "exp_year": "2030",
        "cvc": "***",
        "holder_name": " Roe",
    }


def test_a_card_deposit_reaches_the_soap_sandbox_with_its_details(api: Any, stack: dict[str, Sandbox]) -> None:
    txn = create(api, country="GB", currency="GBP", payment_method="card", payment_details=CARD)
    done = wait_final(api, txn["id"])
    assert (done["status"], done["gateway"]) == ("completed", "soapbank")
    [payment] = received(stack["soapbank"], txn["id"])
    assert payment["payment_method"] == "card"
    assert set(payment["payment_details"]) == set(CARD) and payment["payment_details"]["number"] == "4242"


def test_a_payout_reaches_its_iban(api: Any, stack: dict[str, Sandbox]) -> None:
    txn = create(
        api, "/api/v1/withdrawals", payment_method="bank_account", payment_details={"iban": IBAN, "holder_name": "Jo"}
    )
    done = wait_final(api, txn["id"])
    assert (done["status"], done["type"]) == ("completed", "withdrawal")
    [payment] = received(stack[done["gateway"]], txn["id"])
    assert payment["payment_method"] == "bank_account"
    assert payment["payment_details"] == {"iban": "3000", "holder_name": "Jo"}
    assert done["payment_details"]["iban"] == "DE************3000"


def test_routes_serve_their_methods_and_fail_over_among_them(api: Any, stack: dict[str, Sandbox]) -> None:
    # DE: acmepay 1 takes cards only, soapbank 2 takes everything.
    GatewayRoute.objects.filter(country__code="DE", gateway__code="acmepay").update(payment_methods=["card"])
    wallet = create(api, payment_method="wallet", payment_details={"provider": "paypal", "account": "jo@example.com"})
    assert wait_final(api, wallet["id"])["gateway"] == "soapbank"
    assert received(stack["acmepay"], wallet["id"]) == []

    # A card goes to acmepay; down, it fails over to soapbank, which serves every method.
    stack["acmepay"].mode("down")
    card = create(api, payment_method="card", payment_details=CARD)
    done = wait_final(api, card["id"])
    assert (done["status"], done["gateway"]) == ("completed", "soapbank")
    assert [a["gateway"] for a in done["attempts"]] == ["acmepay", "soapbank"]

    # With soapbank taking only wallets, nothing serves a bank account: 422.
    GatewayRoute.objects.filter(country__code="DE", gateway__code="soapbank").update(payment_methods=["wallet"])
    refused = api.post(
        "/api/v1/deposits",
        data=json.dumps(
            {**DEPOSIT, "payment_method": "bank_account", "payment_details": {"iban": IBAN, "holder_name": "J"}}
        ),
        content_type="application/json",
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "no_route"


def _saved_card(api: Any) -> str:
    first = create(api, payment_method="card", payment_details=CARD, save_payment_method=True)
    assert wait_final(api, first["id"])["status"] == "completed"
    methods = wait_for(
        lambda: api.get("/api/v1/customers/cus_42/payment-methods").json()["payment_methods"],
        timeout=10,
        message="the card to be saved",
    )
    return str(methods[0]["id"])


def test_a_saved_card_pays_a_second_deposit_and_once_deleted_is_refused(api: Any, stack: dict[str, Sandbox]) -> None:
    method_id = _saved_card(api)
    second = create(api, payment_method_id=method_id)
    done = wait_final(api, second["id"])
    assert (done["status"], done["payment_method"]) == ("completed", "card")
    [payment] = received(stack[done["gateway"]], second["id"])
    # The saved details, without the security code the first deposit had.
    assert payment["payment_details"] == {
        "number": "4242",
        "exp_month": "12",
        "exp_year": "2030",
        "holder_name": " Roe",
    }

    assert api.delete(f"/api/v1/payment-methods/{method_id}").status_code == 204
    refused = api.post(
        "/api/v1/deposits",
        data=json.dumps({**DEPOSIT, "payment_method_id": method_id}),
        content_type="application/json",
    )
    assert refused.status_code == 400 and list(refused.json()["error"]["fields"]) == ["payment_method_id"]


@pytest.mark.services
def test_a_dump_of_the_database_holds_no_card_number_or_iban_in_clear(api: Any, stack: dict[str, Sandbox]) -> None:
    _saved_card(api)
    card = create(api, payment_method="card", payment_details=CARD)
    payout = create(
        api, "/api/v1/withdrawals", payment_method="bank_account", payment_details={"iban": IBAN, "holder_name": "Jo"}
    )
    for txn in (card, payout):
        wait_final(api, txn["id"])
    params = connection.get_connection_params()
    env = {**os.environ, "PGPASSWORD": str(params.get("password") or "")}
    command = [
        "pg_dump",
        "--data-only",
        "-h",
        str(params.get("host") or "127.0.0.1"),
        "-p",
        str(params.get("port") or 5432),
    ]
    command += ["-U", str(params.get("user") or "postgres"), str(params.get("dbname") or params.get("database"))]
    dump = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=True).stdout  # noqa: S603
    assert "transaction.completed" in dump or "payments_transaction" in dump  # the dump holds the rows
    for secret in (CARD["number"], IBAN, "4242 4242 4242 4242", CARD["number"][6:12] + CARD["number"][-4:]):
        assert secret not in dump


def test_the_logs_of_the_run_hold_no_card_number_or_iban(
    api: Any, stack: dict[str, Sandbox], worker_process: Any, caplog: Any
) -> None:
    caplog.set_level("DEBUG")
    method_id = _saved_card(api)
    for txn in (
        create(api, payment_method_id=method_id),
        create(api, "/api/v1/withdrawals", payment_method="bank_account", payment_details=BANK),
        create(api, country="GB", currency="GBP", payment_method="card", payment_details=CARD),
    ):
        wait_final(api, txn["id"])
    logs = [caplog.text, worker_process.log_path.read_text(errors="replace")]
    logs += [box.process.log_path.read_text(errors="replace") for box in stack.values()]
    assert "transaction created" in caplog.text  # the web process's log lines were captured
    for text in logs:
        for secret in (CARD["number"], IBAN):
            assert secret not in text
