"""The sandbox's customer actions (CONTRACT §11): action modes, the challenge page, displayed codes."""

from __future__ import annotations

import requests

from sandbox.tests.support import (
    CallbackReceiver,
    Sandbox,
    json_pay,
    payment_fields,
    soap_post,
    soap_request,
    soap_result,
    soap_status,
)

RETURN = "http://127.0.0.1:9/pay/txn/return?t=abc"


def _challenge(gw: Sandbox, receiver: CallbackReceiver, kind: str) -> tuple[dict[str, str], dict]:
    gw.set_mode(action=kind)
    fields = payment_fields(receiver)
    response = json_pay(gw, {**fields, "return_url": RETURN})
    assert response.status_code == 202
    return fields, response.json()


def test_redirect_asks_for_the_challenge_and_waits(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    fields, answer = _challenge(json_gw, receiver, "redirect")
    assert answer["status"] == "action_required"
    action = answer["action"]
    assert action == {
        "type": "redirect",
        "url": f"{json_gw.base_url}/challenge/{answer['payment_id']}",
        "method": "GET",
        "fields": {},
    }
    receiver.assert_stays_at(0)  # no callback until the customer acts
    lookup = json_gw.get(f"/payments/{fields['reference']}").json()
    assert (lookup["status"], lookup["action"]) == ("action_required", action)
    [listed] = json_gw.payments()
    assert (listed["return_url"], listed["action"], listed["status"]) == (RETURN, action, "action_required")

    page = requests.get(action["url"], timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    for button in ("Approve", "Decline", "Cancel"):
        assert f">{button}</button>" in page.text


def test_approve_completes_calls_back_and_sends_the_browser_back(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    fields, answer = _challenge(json_gw, receiver, "redirect")
    decided = requests.post(
        f"{answer['action']['url']}/decide", data={"choice": "approve"}, allow_redirects=False, timeout=5
    )
    assert decided.status_code == 303 and decided.headers["Location"] == RETURN
    # Final at once: the look-up the return endpoint makes already sees it.
    assert json_gw.get(f"/payments/{fields['reference']}").json()["status"] == "completed"
    [callback] = receiver.wait_for(1)
    assert (callback.json()["status"], callback.json()["reason"]) == ("completed", None)
    # A second decision changes nothing.
    again = requests.post(
        f"{answer['action']['url']}/decide", data={"choice": "cancel"}, allow_redirects=False, timeout=5
    )
    assert again.status_code == 303
    assert json_gw.get(f"/payments/{fields['reference']}").json()["status"] == "completed"
    receiver.assert_stays_at(1)


def test_decline_and_cancel_say_why(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    for choice, reason in (("decline", "declined"), ("cancel", "cancelled")):
        receiver.clear()
        fields, answer = _challenge(json_gw, receiver, "redirect")
        requests.post(f"{answer['action']['url']}/decide", data={"choice": choice}, allow_redirects=False, timeout=5)
        [callback] = receiver.wait_for(1)
        assert (callback.json()["status"], callback.json()["reason"]) == ("failed", reason)
        lookup = json_gw.get(f"/payments/{fields['reference']}").json()
        assert (lookup["status"], lookup["reason"]) == ("failed", reason)


def test_redirect_post_needs_its_creq_by_post(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    _, answer = _challenge(json_gw, receiver, "redirect_post")
    action = answer["action"]
    assert action["method"] == "POST" and set(action["fields"]) == {"creq"}
    assert requests.get(action["url"], timeout=5).status_code == 405
    assert requests.post(action["url"], data={"creq": "wrong"}, timeout=5).status_code == 400
    page = requests.post(action["url"], data=action["fields"], timeout=5)
    assert page.status_code == 200 and ">Approve</button>" in page.text


def test_display_code_is_paid_through_the_control_endpoint(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    fields, answer = _challenge(json_gw, receiver, "display_code")
    action = answer["action"]
    assert action["type"] == "display_code" and action["code"].startswith("000201") and action["expires_at"]
    assert json_gw.post("/_sandbox/payments/pay_unknown/pay").status_code == 404
    paid = json_gw.post(f"/_sandbox/payments/{answer['payment_id']}/pay")
    assert paid.status_code == 200 and paid.json()["status"] == "completed"
    assert receiver.wait_for(1)[0].json()["status"] == "completed"


def test_soap_action_required_and_its_status(xml_gw: Sandbox, receiver: CallbackReceiver) -> None:
    xml_gw.set_mode(action="redirect_post")
    fields = payment_fields(receiver)
    values = {
        "ApiKey": xml_gw.api_key,
        "Reference": fields["reference"],
        "TransactionId": fields["transaction_id"],
        "Type": fields["type"],
        "Amount": fields["amount"],
        "Currency": fields["currency"],
        "Country": fields["country"],
        "CustomerId": fields["customer_id"],
        "CallbackUrl": fields["callback_url"],
        "ReturnUrl": RETURN,
    }
    response = soap_post(xml_gw, "ProcessPayment", soap_request("ProcessPayment", values))
    result = soap_result(response, "ProcessPayment")
    assert result["Status"] == "ActionRequired" and result["ActionType"] == "Redirect"
    assert result["ActionMethod"] == "POST" and result["ActionUrl"].startswith(f"{xml_gw.base_url}/challenge/")
    assert '<Field name="creq">' in response.text
    assert soap_result(soap_status(xml_gw, fields["reference"]), "GetPaymentStatus")["Status"] == "ActionRequired"
    [listed] = xml_gw.payments()
    assert listed["return_url"] == RETURN


def test_the_wsdl_describes_the_actions(xml_gw: Sandbox) -> None:
    wsdl = xml_gw.get("/soap?wsdl").text
    for name in (
        "ReturnUrl",
        "ActionRequired",
        "ActionType",
        "ActionUrl",
        "ActionMethod",
        "ActionFields",
        "ActionCode",
    ):
        assert f'"{name}"' in wsdl
