"""Money rules: parsing amounts without floats, and showing them with the currency's minor units."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from core.currencies import minor_units

_AMOUNT_RE = re.compile(r"^\d{1,18}(\.\d{1,18})?$")


class AmountError(ValueError):
    pass


def parse_amount(raw: object, *, currency: str, maximum: Decimal) -> Decimal:
    """A positive decimal with no more fractional digits than the currency allows, at most `maximum`.

    Accepts a decimal string ("25.00") or a JSON number already parsed as Decimal; refuses
    floats, booleans, exponents, NaN and Infinity.
    """
    if isinstance(raw, (bool, float)):
        raise AmountError('Must be a decimal string such as "25.00".')
    if isinstance(raw, int):
        raw = str(raw)
    if isinstance(raw, Decimal):
        if not raw.is_finite():
            raise AmountError("Must be a finite number.")
        raw = format(raw, "f")
    if not isinstance(raw, str):
        raise AmountError('Must be a decimal string such as "25.00".')
    text = raw.strip()
    if not _AMOUNT_RE.match(text):
        raise AmountError('Must be a plain decimal number such as "25.00".')
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise AmountError("Must be a decimal number.") from None
    if amount <= 0:
        raise AmountError("Must be greater than zero.")
    places = minor_units(currency)
    exponent = amount.normalize().as_tuple().exponent
    if not isinstance(exponent, int):  # "n"/"N"/"F": not reachable through _AMOUNT_RE, but never assume
        raise AmountError("Must be a finite number.")
    if -exponent > places:
        raise AmountError(f"{currency} allows at most {places} decimal places.")
    if amount > maximum:
        raise AmountError(f"Must not exceed {maximum}.")
    return amount


def format_amount(amount: Decimal, currency: str) -> str:
    places = minor_units(currency)
    return format(amount.quantize(Decimal(1).scaleb(-places)), "f")
