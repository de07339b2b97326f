"""How the pay page says things: the customer's language, amounts formatted for it, the QR image."""

from __future__ import annotations

from decimal import Decimal

import segno
from django.conf import settings
from django.http import HttpRequest
from django.utils import formats, translation
from django.utils.translation.trans_real import parse_accept_lang_header

from payments.money import format_amount

_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "BRL": "R$", "JPY": "¥", "CHF": "CHF"}


def pay_language(*, request: HttpRequest, locale: str) -> str:
    """The deposit's `locale`, else the browser's Accept-Language, else English."""
    supported = {code for code, _ in settings.LANGUAGES}
    if locale:
        try:
            return translation.get_supported_language_variant(locale.lower())
        except LookupError:
            base = locale.split("-")[0].lower()
            if base in supported:
                return base
    header = request.headers.get("Accept-Language", "")
    for tag, _ in parse_accept_lang_header(header[:500]):
        if tag == "*":
            continue
        try:
            return translation.get_supported_language_variant(tag)
        except LookupError:
            continue
    return "en"


def money_display(*, amount: Decimal, currency: str, language: str) -> str:
    """`€25.00` in English, `25,00 €` in German, `R$ 25,00` in Portuguese."""
    places = len(format_amount(amount, currency).partition(".")[2])
    with translation.override(language):
        number = formats.number_format(
            Decimal(format_amount(amount, currency)), places, use_l10n=True, force_grouping=True
        )
    symbol = _SYMBOLS.get(currency)
    if symbol is None:
        return f"{number} {currency}"
    if language == "de":
        return f"{number}\u00a0{symbol}"
    if language == "pt":
        return f"{symbol}\u00a0{number}"
    return f"{symbol}{number}" if len(symbol) == 1 else f"{symbol}\u00a0{number}"


def qr_data_uri(code: str) -> str:
    """The code as a QR image, made here (no outside service): an SVG data URI."""
    return segno.make(code, error="m").svg_data_uri(scale=5, border=2, dark="#111827")


def with_transaction_id(url: str, transaction_id: str) -> str:
    """The merchant's return_url with `transaction_id=<id>` added to its query (one given is replaced).

    Plain string work, not a parse and re-encode: the rest of the merchant's URL stays byte for byte.
    """
    base, hash_, fragment = url.partition("#")
    path, _, query = base.partition("?")
    kept = [part for part in query.split("&") if part and part.split("=", 1)[0] != "transaction_id"]
    kept.append(f"transaction_id={transaction_id}")
    return f"{path}?{'&'.join(kept)}{hash_}{fragment}"
