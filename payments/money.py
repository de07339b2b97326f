"""Money rules: ISO 4217 codes, their minor units, and parsing amounts without floats."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# Active ISO 4217 codes. Minor units are 2 unless listed in _MINOR_UNITS.
ISO_4217 = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN
    BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP
    GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF
    KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR
    MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK
    SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU
    UYW UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
    """.split()
)
_MINOR_UNITS = {
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}

_AMOUNT_RE = re.compile(r"^\d{1,18}(\.\d{1,18})?$")


class AmountError(ValueError):
    pass


def minor_units(currency: str) -> int:
    return _MINOR_UNITS.get(currency, 2)


def is_currency(code: str) -> bool:
    return code in ISO_4217


def parse_amount(raw: object, *, currency: str, maximum: Decimal) -> Decimal:
    """A positive decimal with no more fractional digits than the currency allows, at most `maximum`.

    Accepts a decimal string ("25.00") or a JSON number already parsed as Decimal; refuses
    floats, booleans, exponents, NaN and Infinity.
    """
    if isinstance(raw, bool) or isinstance(raw, float):
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
