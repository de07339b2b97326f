"""The pay page's form for details Paygate collects (CONTRACT §12): what the customer typed, read into
the API's fields, and the form's CSRF check.

The form's fields are what a customer types (the card number grouped with spaces, the expiry as
`MM / YY`); they are read into the API's fields (`number`, `exp_month`, `exp_year`, `cvc`,
`holder_name`; `iban` or `account_number` with `bank_code`) and validated by the API's own rules
(payments.methods) in payments.collect. Nothing typed is ever logged; a re-rendered form keeps
the name and the expiry, never the card number or the security code.

CSRF: a double-submit token. The page sets a random cookie (HttpOnly, SameSite=Strict, the pay
page's path only) and the form carries an HMAC of it bound to the transaction; a POST must bring
both, matching. Django's own check cannot serve here: the pay page's `Referrer-Policy: no-referrer`
(CONTRACT §11) makes browsers send `Origin: null` with the form, which that check refuses.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext as _

from core.text import is_storable
from gateways.methods import PaymentMethod
from payments.methods import EXPIRED_MESSAGE, IBAN_MESSAGE, LUHN_MESSAGE

CSRF_COOKIE = "paygate_pay_csrf"
CSRF_FIELD = "csrf"
_CSRF_SALT = "paygate.pay-page.csrf"
_MAX_FIELD_LENGTH = 300

# The form's fields for each method, as the template names them.
CARD_FORM_FIELDS = ("number", "exp", "cvc", "holder_name")
BANK_FORM_FIELDS = ("iban", "account_number", "bank_code", "holder_name")
# Refilled on an error: never the card number or the security code (PCI DSS: avoid echoing them).
REFILLED = frozenset({"exp", "holder_name", "iban", "account_number", "bank_code"})

_EXPIRY = re.compile(r"^\s*(\d{1,2})\s*[/\-. ]?\s*(\d{2}|\d{4})\s*$")
_SPACING = re.compile(r"[\s\-]+")


def csrf_cookie_value(request: HttpRequest) -> str:
    value = request.COOKIES.get(CSRF_COOKIE, "")
    return value if re.fullmatch(r"[A-Za-z0-9_-]{32,64}", value) else secrets.token_urlsafe(32)


def csrf_form_token(*, transaction_id: str, cookie: str) -> str:
    return salted_hmac(_CSRF_SALT, f"{transaction_id}:{cookie}", algorithm="sha256").hexdigest()


def csrf_valid(request: HttpRequest, *, transaction_id: str) -> bool:
    cookie = request.COOKIES.get(CSRF_COOKIE, "")
    sent = request.POST.get(CSRF_FIELD, "")
    if not cookie or not sent or len(sent) > 128:
        return False
    return constant_time_compare(sent, csrf_form_token(transaction_id=transaction_id, cookie=cookie))


def csrf_cookie_set(response: HttpResponse, *, request: HttpRequest, cookie: str, transaction_id: str) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        cookie,
        max_age=3 * 3600,
        path=f"/pay/{transaction_id}",
        secure=request.is_secure(),
        httponly=True,
        samesite="Strict",
    )


@dataclass(frozen=True, slots=True)
class Typed:
    """What the customer typed: the API's details, errors the form found itself, and what to refill."""

    details: dict[str, str]
    errors: dict[str, str]
    refill: dict[str, str]


def _field(post: Any, name: str) -> str:
    value = post.get(name, "")
    return value.strip()[:_MAX_FIELD_LENGTH] if isinstance(value, str) else ""


def typed_details(method: str, post: Any) -> Typed:
    """The API's `payment_details` from the form's fields (blank fields left out)."""
    errors: dict[str, str] = {}
    names = CARD_FORM_FIELDS if method == PaymentMethod.CARD else BANK_FORM_FIELDS
    for name in names:
        if not is_storable(_field(post, name)):  # NUL: refused, as by the API (core/text.py)
            errors[name] = _("Check the details and try again.")
    details: dict[str, str] = {}
    if method == PaymentMethod.CARD:
        number = _SPACING.sub("", _field(post, "number"))
        if number:
            details["number"] = number
        expiry = _field(post, "exp")
        match = _EXPIRY.match(expiry)
        if match:
            month, year = match.groups()
            details["exp_month"] = month.zfill(2)
            details["exp_year"] = year if len(year) == 4 else f"20{year}"
        else:
            errors["exp"] = _("Enter the expiry date as MM / YY.")
        for name in ("cvc", "holder_name"):
            if _field(post, name):
                details[name] = _field(post, name)
        refill = {"exp": expiry, "holder_name": _field(post, "holder_name")}
    else:
        iban = _SPACING.sub("", _field(post, "iban")).upper()
        if iban:
            details["iban"] = iban
        for name in ("account_number", "bank_code"):
            value = _SPACING.sub("", _field(post, name)) if name == "account_number" else _field(post, name)
            if value:
                details[name] = value
        if _field(post, "holder_name"):
            details["holder_name"] = _field(post, "holder_name")
        refill = {name: _field(post, name) for name in REFILLED if name != "exp"}
    return Typed(details=details, errors=errors, refill=refill)


def form_errors(method: str, api_errors: dict[str, list[str]]) -> dict[str, str]:
    """The API's errors by detail field, as the customer reads them next to the form's fields."""
    shown: dict[str, str] = {}
    for key, messages in api_errors.items():
        message = messages[0] if messages else ""
        if key in ("exp_month", "exp_year"):
            shown.setdefault(
                "exp",
                _("This card has expired.") if message == EXPIRED_MESSAGE else _("Enter the expiry date as MM / YY."),
            )
        elif key == "number":
            shown["number"] = (
                _("This card number is not valid. Check it and try again.")
                if message == LUHN_MESSAGE
                else _("Enter the card number: 12 to 19 digits.")
            )
        elif key == "cvc":
            shown["cvc"] = _("Enter the 3 or 4 digit security code.")
        elif key == "holder_name":
            shown["holder_name"] = (
                _("Enter the name on the card.")
                if method == PaymentMethod.CARD
                else _("Enter the account holder's name.")
            )
        elif key == "iban":
            shown["iban"] = (
                _("This IBAN is not valid. Check it and try again.")
                if message == IBAN_MESSAGE
                else _("Enter an IBAN, or an account number with a bank code.")
            )
        elif key == "account_number":
            shown["account_number"] = _("Enter the account number (4 to 34 letters or digits).")
        elif key == "bank_code":
            shown["bank_code"] = _("Enter the bank code (routing number, sort code…).")
        else:
            shown.setdefault("form", _("Check the details and try again."))
    return shown
