"""The adapters' side of customer actions (CONTRACT §11), against the recorded-payload stub gateway."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from gateways.adapters import JsonGatewayAdapter, SoapGatewayAdapter
from gateways.types import CustomerAction, LookupStatus, Outcome
from testing.fakegateway import SANDBOX, SOAP_ENV, Canned, StubGateway, make_request, payload

RETURN = "https://paygate.example/pay/txn_42/return?t=abc:def"


def test_json_request_carries_the_return_url(gateway: StubGateway, json_adapter: JsonGatewayAdapter) -> None:
    gateway.answer("POST", "/payments", Canned(202, payload("json/create_accepted.json")))
    json_adapter.create_payment(make_request(return_url=RETURN))
    assert json.loads(gateway.last.body)["return_url"] == RETURN
    json_adapter.create_payment(make_request())
    assert "return_url" not in json.loads(gateway.last.body)  # a withdrawal's, as before


def test_json_action_required_with_a_post_redirect(gateway: StubGateway, json_adapter: JsonGatewayAdapter) -> None:
    gateway.answer("POST", "/payments", Canned(202, payload("json/create_action_redirect_post.json")))
    result = json_adapter.create_payment(make_request(return_url=RETURN))
    assert (result.outcome, result.payment_id) == (Outcome.ACCEPTED, "ap_3ds_771")
    assert result.action == CustomerAction(
        type="redirect",
        url="https://acs.bank.example/challenge/771",
        method="POST",
        fields=(("creq", "eyJ0aHJlZURTU2VydmVyVHJhbnNJRCI6IjEifQ"), ("threeDSSessionData", "s-771")),
    )


def test_json_action_required_with_a_code(gateway: StubGateway, json_adapter: JsonGatewayAdapter) -> None:
    gateway.answer("POST", "/payments", Canned(202, payload("json/create_action_display_code.json")))
    action = json_adapter.create_payment(make_request()).action
    assert action is not None and action.type == "display_code"
    assert (action.code, action.expires_at) == ("00020126580014br.gov.bcb.pix0136a629532e", "2026-12-05T14:00:00Z")


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("2026-12-05T14:00:00Z", "2026-12-05T14:00:00Z"),
        ("2026-12-05T16:00:00+02:00", "2026-12-05T14:00:00Z"),
        ("2026-12-05T14:00:00", None),  # no offset: not an instant
        ("tomorrow", None),
    ],
)
def test_a_code_keeps_only_a_real_expiry(
    gateway: StubGateway, json_adapter: JsonGatewayAdapter, given: str, kept: str | None
) -> None:
    body = {
        "payment_id": "p1",
        "status": "action_required",
        "action": {"type": "display_code", "code": "c", "expires_at": given},
    }
    gateway.answer("POST", "/payments", Canned(202, json.dumps(body).encode()))
    action = json_adapter.create_payment(make_request()).action
    assert action is not None and action.expires_at == kept


@pytest.mark.parametrize(
    "action",
    [
        pytest.param({"type": "redirect", "url": "javascript:alert(1)"}, id="javascript-url"),
        pytest.param({"type": "redirect", "url": "/relative"}, id="relative-url"),
        pytest.param({"type": "redirect", "url": "https://u:p@bank.example/"}, id="credentials"),
        pytest.param({"type": "redirect", "url": "https://bank.example/", "method": "PUT"}, id="method"),
        pytest.param({"type": "redirect"}, id="no-url"),
        pytest.param({"type": "display_code"}, id="no-code"),
        pytest.param({"type": "teleport"}, id="type"),
        pytest.param({"type": "redirect", "url": "https://bank.example/", "fields": {"a": 1}}, id="field-number"),
        pytest.param("https://bank.example/", id="not-an-object"),
    ],
)
def test_an_unusable_action_is_a_malformed_reply(
    gateway: StubGateway, json_adapter: JsonGatewayAdapter, action: object
) -> None:
    body = json.dumps({"payment_id": "p1", "status": "action_required", "action": action}).encode()
    gateway.answer("POST", "/payments", Canned(202, body))
    result = json_adapter.create_payment(make_request())
    # The gateway may have the payment: look it up, never send a browser to that URL.
    assert (result.outcome, result.error, result.action) == (Outcome.UNKNOWN, "malformed_reply", None)


def test_plain_http_action_urls_only_with_debug_or_an_allowed_host(
    gateway: StubGateway, json_adapter: JsonGatewayAdapter
) -> None:
    body = json.dumps(
        {"payment_id": "p1", "status": "action_required", "action": {"type": "redirect", "url": "http://acs.example/c"}}
    ).encode()
    gateway.answer("POST", "/payments", Canned(202, body))
    with override_settings(DEBUG=False, PAYGATE_GATEWAY_ALLOWED_HOSTS=[]):
        assert json_adapter.create_payment(make_request()).outcome == Outcome.UNKNOWN
    with override_settings(DEBUG=False, PAYGATE_GATEWAY_ALLOWED_HOSTS=["acs.example"]):
        assert json_adapter.create_payment(make_request()).outcome == Outcome.ACCEPTED
    with override_settings(DEBUG=True, PAYGATE_GATEWAY_ALLOWED_HOSTS=[]):
        assert json_adapter.create_payment(make_request()).outcome == Outcome.ACCEPTED


def test_json_look_ups_with_an_action_and_a_reason(gateway: StubGateway, json_adapter: JsonGatewayAdapter) -> None:
    gateway.answer("GET", "/payments/att_0001", Canned(200, payload("json/lookup_action_required.json")))
    waiting = json_adapter.lookup_payment("att_0001")
    assert waiting.status == LookupStatus.ACTION_REQUIRED and waiting.action is not None
    assert waiting.action.url == "https://acs.bank.example/challenge/771"
    gateway.answer("GET", "/payments/att_0001", Canned(200, payload("json/lookup_failed_cancelled.json")))
    failed = json_adapter.lookup_payment("att_0001")
    assert (failed.status, failed.reason) == (LookupStatus.FAILED, "cancelled")


def test_soap_request_carries_the_return_url(gateway: StubGateway, soap_adapter: SoapGatewayAdapter) -> None:
    gateway.answer("POST", "/soap", Canned(200, payload("xml/create_accepted.xml"), "text/xml"))
    soap_adapter.create_payment(make_request(return_url=RETURN))
    import defusedxml.ElementTree as SafeET

    body = SafeET.fromstring(gateway.last.body).find(f"{SOAP_ENV}Body")
    assert body is not None
    assert body.findtext(f"{SANDBOX}ProcessPayment/{SANDBOX}ReturnUrl") == RETURN


def test_soap_action_required_with_fields(gateway: StubGateway, soap_adapter: SoapGatewayAdapter) -> None:
    gateway.answer("POST", "/soap", Canned(200, payload("xml/create_action_redirect_post.xml"), "text/xml"))
    result = soap_adapter.create_payment(make_request())
    assert (result.outcome, result.payment_id) == (Outcome.ACCEPTED, "PX-3DS-1")
    assert result.action == CustomerAction(
        type="redirect",
        url="https://acs.bank.example/challenge/PX-3DS-1",
        method="POST",
        fields=(("creq", "c-&-1"), ("MD", "md-1")),
    )


def test_soap_status_action_required(gateway: StubGateway, soap_adapter: SoapGatewayAdapter) -> None:
    gateway.answer("POST", "/soap", Canned(200, payload("xml/status_action_required.xml"), "text/xml"))
    result = soap_adapter.lookup_payment("att_0001")
    assert result.status == LookupStatus.ACTION_REQUIRED
    assert result.action == CustomerAction(
        type="display_code", code="00020126580014br.gov.bcb.pix", expires_at="2026-12-05T14:00:00Z"
    )
