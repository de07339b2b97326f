"""The pay page (CONTRACT §11): where the merchant sends the customer's browser.

`GET /pay/<id>?t=<token>` shows what the transaction needs now: a waiting page until a
gateway answered, a redirect (or a self-submitting form) to the gateway's action, a code to
pay with, and at the end a `303` to the merchant's `return_url`. `GET /pay/<id>/return` is
where the gateway sends the customer back: the attempt is looked up at the gateway first,
then the same page answers. Nothing the browser brings changes a status, except the details a
customer types into the pay page's form of a deposit Paygate collects them for (CONTRACT §12):
`POST /pay/<id>?t=<token>`, see checkout/collect.py.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from core.paytoken import pay_token_valid
from payments.actions import ACTION_COLLECT, ACTION_DISPLAY_CODE, ACTION_REDIRECT, awaiting_details, collect_deadline
from payments.collect import transaction_details_collect
from payments.methods import method_details_errors
from payments.models import Transaction, TransactionStatus
from payments.processing import transaction_return_lookup
from payments.services import customer_action_count

from .collect import (
    CSRF_FIELD,
    csrf_cookie_set,
    csrf_cookie_value,
    csrf_form_token,
    csrf_valid,
    form_errors,
    typed_details,
)
from .presentation import money_display, pay_language, qr_data_uri, with_transaction_id
from .ratelimit import pay_page_allowed
from .scripts import script_integrity
from .selectors import pay_transaction_get

# Seconds between the reloads of a page that waits for the gateway or for the customer's payment.
WAITING_REFRESH_SECONDS = 2
CODE_REFRESH_SECONDS = 5

# Every pay page answer: never kept, never named to the next site, never framed.
PAY_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}
# Where browsers send the pay page's CSP violation reports (PCI DSS 11.6.1): Paygate itself.
CSP_REPORT_PATH = "/csp-report"
CSP_REPORT_GROUP = "csp"


@csrf_exempt  # the form's own double-submit check (checkout/collect.py) protects its POST
def pay_page(request: HttpRequest, transaction_id: str) -> HttpResponse:
    if request.method == "POST":
        return _collect(request, transaction_id)
    return _serve(request, transaction_id, returning=False)


def pay_return(request: HttpRequest, transaction_id: str) -> HttpResponse:
    return _serve(request, transaction_id, returning=True)


def _opened(request: HttpRequest, transaction_id: str) -> tuple[str, Transaction] | HttpResponse:
    """The per-address limit, then the token: the link's token and transaction, or the refusal."""
    if not pay_page_allowed(request):
        response = render(request, "checkout/message.html", {"title": "Too many requests"}, status=429)
        response["Retry-After"] = "60"
        return _headers(response)
    token = request.GET.get("t", "")
    txn = (
        pay_transaction_get(transaction_id=transaction_id)
        if pay_token_valid(token, transaction_id=transaction_id)
        else None
    )
    if txn is None:
        return _headers(render(request, "checkout/message.html", {"title": "Not found"}, status=404))
    return token, txn


def _serve(request: HttpRequest, transaction_id: str, *, returning: bool) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return _headers(HttpResponseNotAllowed(["GET", "HEAD"]))
    opened = _opened(request, transaction_id)
    if isinstance(opened, HttpResponse):
        return opened
    token, txn = opened
    if returning:
        customer_action_count(txn, stage="returned")
    if returning and not txn.is_final:
        # The customer is back from the gateway: ask it, so the merchant's page sees the outcome.
        transaction_return_lookup(
            transaction_id=str(txn.pk), timeout=settings.PAYGATE_PAY_RETURN_LOOKUP_TIMEOUT_SECONDS
        )
        txn = pay_transaction_get(transaction_id=transaction_id) or txn
    language = pay_language(request=request, locale=txn.locale)
    with translation.override(language):
        response = _page(request, txn, token=token, language=language)
        response["Content-Language"] = language
    return _headers(response)


def _headers(response: HttpResponse) -> HttpResponse:
    for name, value in PAY_PAGE_HEADERS.items():
        response[name] = value
    # CSP violations are reported to Paygate (CONTRACT §12; PCI DSS 11.6.1).
    update = dict(getattr(response, "_csp_update", None) or {})
    update["report-uri"] = [CSP_REPORT_PATH]
    update["report-to"] = [CSP_REPORT_GROUP]
    response._csp_update = update  # type: ignore[attr-defined]
    response["Reporting-Endpoints"] = f'{CSP_REPORT_GROUP}="{CSP_REPORT_PATH}"'
    return response


def _see_other(url: str) -> HttpResponse:
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


def _page(request: HttpRequest, txn: Transaction, *, token: str, language: str) -> HttpResponse:
    context: dict[str, Any] = {
        "merchant": txn.client.name,
        "amount": money_display(amount=txn.amount, currency=txn.currency, language=language),
        "language": language,
        "pay_url": f"/pay/{txn.pk}?t={token}",
    }
    if txn.is_final:
        if txn.return_url:
            return _see_other(with_transaction_id(txn.return_url, str(txn.pk)))
        context["completed"] = txn.status == TransactionStatus.COMPLETED
        context["failure_reason"] = txn.failure_reason
        return render(request, "checkout/result.html", context)
    action = txn.action or {}
    if txn.status == TransactionStatus.REQUIRES_ACTION and action.get("type") == ACTION_REDIRECT:
        if action.get("method") == "POST":
            context["action_url"] = action["url"]
            context["fields"] = sorted((action.get("fields") or {}).items())
            response = render(request, "checkout/post_form.html", context)
            # The form goes to the gateway: that origin, and only it, joins `form-action`.
            parts = urlsplit(action["url"])
            response._csp_update = {"form-action": [f"{parts.scheme}://{parts.netloc}"]}  # type: ignore[attr-defined]
            customer_action_count(txn, stage="forwarded")
            return response
        customer_action_count(txn, stage="forwarded")
        return _see_other(action["url"])
    if txn.status == TransactionStatus.REQUIRES_ACTION and action.get("type") == ACTION_DISPLAY_CODE:
        context["code"] = action.get("code", "")
        context["qr"] = qr_data_uri(context["code"])
        context["refresh"] = CODE_REFRESH_SECONDS
        # Its own reloads carry `r=1`: the funnel counts the code shown once, not every reload.
        context["refresh_url"] = f"{context['pay_url']}&r=1"
        if "r" not in request.GET:
            customer_action_count(txn, stage="forwarded")
        return render(request, "checkout/code.html", context)
    if _collecting(txn):
        return _collect_form(request, txn, context)
    context["refresh"] = WAITING_REFRESH_SECONDS
    # Back from the gateway, or past the action: the gateway is finishing, not being reached.
    context["confirming"] = txn.status == TransactionStatus.PROCESSING
    return render(request, "checkout/waiting.html", context)


# --- The form of details Paygate collects (CONTRACT §12) --------------------------------------------


def _collecting(txn: Transaction) -> bool:
    """Awaiting the customer's details, within the deadline."""
    deadline = collect_deadline(txn)
    return awaiting_details(txn) and deadline is not None and timezone.now() < deadline


def _collect_form(
    request: HttpRequest,
    txn: Transaction,
    context: dict[str, Any],
    *,
    errors: dict[str, str] | None = None,
    refill: dict[str, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    cookie = csrf_cookie_value(request)
    context.update(
        method=txn.payment_method,
        csrf_field=CSRF_FIELD,
        csrf_token=csrf_form_token(transaction_id=str(txn.pk), cookie=cookie),
        errors=errors or {},
        values=refill or {},
        offer_save=txn.save_payment_method,
        saved_ticked=bool(refill and refill.get("save")),
        script_integrity=script_integrity("checkout/collect.js"),
    )
    response = render(request, "checkout/collect.html", context, status=status)
    csrf_cookie_set(response, request=request, cookie=cookie, transaction_id=str(txn.pk))
    return response


def _collect(request: HttpRequest, transaction_id: str) -> HttpResponse:
    """The customer's details from the form: stored and processing started, or the form again with errors."""
    opened = _opened(request, transaction_id)
    if isinstance(opened, HttpResponse):
        return opened
    token, txn = opened
    if (txn.action or {}).get("type") != ACTION_COLLECT:
        return _headers(HttpResponseNotAllowed(["GET", "HEAD"]))  # this page takes no form
    pay_url = f"/pay/{txn.pk}?t={token}"
    if not _collecting(txn):
        return _headers(_see_other(pay_url))  # taken already, or too late: the page says what happens now
    language = pay_language(request=request, locale=txn.locale)
    with translation.override(language):
        response = _collect_answer(request, txn, pay_url=pay_url, language=language)
        response["Content-Language"] = language
    return _headers(response)


def _collect_answer(request: HttpRequest, txn: Transaction, *, pay_url: str, language: str) -> HttpResponse:
    context: dict[str, Any] = {
        "merchant": txn.client.name,
        "amount": money_display(amount=txn.amount, currency=txn.currency, language=language),
        "language": language,
        "pay_url": pay_url,
    }
    if not csrf_valid(request, transaction_id=str(txn.pk)):
        return _collect_form(
            request,
            txn,
            context,
            errors={"form": _("This form has expired. Please enter the details again.")},
            status=403,
        )
    typed = typed_details(txn.payment_method, request.POST)
    save = request.POST.get("save") == "1"
    refill = {**typed.refill, **({"save": "1"} if save else {})}
    if typed.errors:
        api_errors = method_details_errors(txn.payment_method, typed.details, today=timezone.now().date())
        errors = {**form_errors(txn.payment_method, api_errors), **typed.errors}
        return _collect_form(request, txn, context, errors=errors, refill=refill, status=400)
    result = transaction_details_collect(transaction_id=str(txn.pk), details=typed.details, save=save)
    if result.errors:
        errors = form_errors(txn.payment_method, result.errors)
        return _collect_form(request, txn, context, errors=errors, refill=refill, status=400)
    return _see_other(pay_url)  # accepted (or taken meanwhile): the page shows the payment going on
