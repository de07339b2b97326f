"""Money rules: parsing amounts without floats, and showing them with the currency's minor units."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from core.currencies import minor_units
from core.parsers import ExponentDecimal

# At most this many digits before the point, and as many after it.
MAX_DIGITS = 18
# A plain decimal: no sign, exponent, leading zero (but "0.50") or surrounding space; ASCII digits only.
# The OpenAPI schema says the same, bounds included: see `amount_pattern`.
_AMOUNT_RE = re.compile(rf"(?:0|[1-9][0-9]{{0,{MAX_DIGITS - 1}}})(?:\.[0-9]{{1,{MAX_DIGITS}}})?")


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
    if isinstance(raw, ExponentDecimal):
        raise AmountError('Must be a plain decimal number such as "25.00", without an exponent.')
    if isinstance(raw, Decimal):
        if not raw.is_finite():
            raise AmountError("Must be a finite number.")
        # Formatting 1E+1000000000 would build a gigabyte of digits: bound the size first.
        if len(raw.as_tuple().digits) > 2 * MAX_DIGITS or not -2 * MAX_DIGITS <= raw.adjusted() <= 2 * MAX_DIGITS:
            raise AmountError('Must be a plain decimal number such as "25.00".')
        raw = format(raw, "f")
    if not isinstance(raw, str):
        raise AmountError('Must be a decimal string such as "25.00".')
    text = raw
    if not _AMOUNT_RE.fullmatch(text):
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


# --- The same rules as regular expressions, for the OpenAPI schema ---------------------------------
#
# JSON Schema cannot compare a string with a number, so `amount_pattern` spells "a plain decimal
# above zero, at most `maximum`, with no more than `places` fractional digits that are not zero"
# digit by digit. It uses only what ECMA-262 and Python's `re` read alike: literal digits, [0-9]
# classes, bounded repeats, groups and alternation (no \d, no look-around).


def _digits(low: int, high: int) -> str:
    return str(low) if low == high else f"[{low}-{high}]"


def _repeat(atom: str, low: int, high: int) -> str:
    if high <= 0:
        return ""
    if low == high:
        return atom if high == 1 else f"{atom}{{{high}}}"
    return f"{atom}{{{low},{high}}}"


def _either(options: list[str]) -> str | None:
    if not options:
        return None
    return options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"


def _fraction(position: int, *, places: int, bound: str | None, need_nonzero: bool, may_end: bool) -> str | None:
    """The fraction's digits from `position` on; None when no digits can follow.

    `bound`: the fraction digits of the maximum while every digit so far equals its own (the value
    must stay at or below it); None once a digit was smaller. `need_nonzero`: every digit so far was
    zero and the amount is still zero. Digits from `places` on must be zeros.
    """
    if bound is None and not need_nonzero:
        free, zeros = max(places - position, 0), MAX_DIGITS - max(places, position)
        if may_end:
            return _repeat("[0-9]", 0, free) + _repeat("0", 0, zeros) or ""
        if free:
            return _repeat("[0-9]", 1, free) + _repeat("0", 0, zeros)
        return _repeat("0", 1, zeros) or None
    if bound is not None and not need_nonzero and position >= len(bound):
        # The maximum's own digits are used up: only zeros keep the amount at or below it.
        return _repeat("0", 0 if may_end else 1, MAX_DIGITS - position) or ("" if may_end else None)
    options = [""] if may_end and not need_nonzero else []
    if position < MAX_DIGITS:
        limit = (int(bound[position]) if position < len(bound) else 0) if bound is not None else 9
        top = limit if position < places else 0
        zero_rest = _fraction(
            position + 1,
            places=places,
            bound=bound if limit == 0 else None,
            need_nonzero=need_nonzero,
            may_end=True,
        )
        if zero_rest is not None:
            options.append("0" + zero_rest)
        below = top - 1 if bound is not None else top
        if below >= 1:
            rest = _fraction(position + 1, places=places, bound=None, need_nonzero=False, may_end=True)
            options.append(_digits(1, below) + (rest or ""))
        if bound is not None and 1 <= limit <= top:
            rest = _fraction(position + 1, places=places, bound=bound, need_nonzero=False, may_end=True)
            options.append(str(limit) + (rest or ""))
    return _either(options)


def _integers_up_to(highest: str) -> str:
    """1 to `highest` (a positive integer's digits), without leading zeros."""
    length = len(highest)
    if set(highest) == {"9"}:
        return f"[1-9]{_repeat('[0-9]', 0, length - 1)}"
    options = [f"[1-9]{_repeat('[0-9]', 0, length - 2)}"] if length >= 2 else []
    for index, digit in enumerate(highest):
        low = 1 if index == 0 else 0
        rest = length - index - 1
        if int(digit) > low:
            options.append(highest[:index] + _digits(low, int(digit) - 1) + _repeat("[0-9]", rest, rest))
    options.append(highest)
    return _either(options) or highest


def amount_pattern(*, places: int, maximum: Decimal) -> str:
    """An anchored pattern matching exactly the strings `parse_amount` accepts for this currency."""
    if not maximum.is_finite() or maximum <= 0:
        return "^[^\\s\\S]$"  # nothing is accepted
    whole = int(maximum)
    bound = format(maximum - whole, "f").partition(".")[2].rstrip("0")
    limit = 10**MAX_DIGITS
    options = []
    if min(whole, limit) >= 2:
        any_fraction = _fraction(0, places=places, bound=None, need_nonzero=False, may_end=False)
        below = _integers_up_to(str(min(whole, limit) - 1))
        options.append(below + (f"(?:\\.{any_fraction})?" if any_fraction else ""))
    if 1 <= whole < limit:
        fraction = _fraction(0, places=places, bound=bound, need_nonzero=False, may_end=False)
        options.append(str(whole) + (f"(?:\\.{fraction})?" if fraction else ""))
    small = _fraction(0, places=places, bound=bound if whole == 0 else None, need_nonzero=True, may_end=False)
    if small is not None:
        options.append(f"0\\.{small}")
    return "^" + (_either(options) or "[^\\s\\S]") + "$"
