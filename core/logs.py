"""Structured logs: JSON lines carrying the request, transaction, attempt and gateway ids.

The ids travel in context variables: the API binds the request id, the pipeline binds the
transaction, attempt and gateway as it learns them, and Celery tasks inherit the request
id through a message header. A redacting filter is the safety net under all of it:
card-number-like (Luhn-valid, 13–19 digits) and IBAN-like strings never reach a handler, and
values under the keys the apps register as sensitive (core.masking) are masked as everywhere
else, or dropped.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest, HttpResponse

from .masking import is_hidden_key, is_masked_key, mask_text

CONTEXT_FIELDS = ("request_id", "transaction_id", "attempt", "refund", "gateway")
_context: dict[str, contextvars.ContextVar[str | None]] = {
    name: contextvars.ContextVar(name, default=None) for name in CONTEXT_FIELDS
}
# Extra attributes worth keeping in a JSON line when a call passes them.
_EXTRA_FIELDS = ("event_id", "event_pk", "error", "latency_ms", "route_round", "gateway_id", "type", "status", "task")


def bind(**values: Any) -> None:
    for name, value in values.items():
        _context[name].set(None if value is None else str(value))


@contextmanager
def log_context(**values: Any) -> Iterator[None]:
    tokens = {name: _context[name].set(None if value is None else str(value)) for name, value in values.items()}
    try:
        yield
    finally:
        for name, token in tokens.items():
            _context[name].reset(token)


def current(name: str) -> str | None:
    return _context[name].get()


# --- Redaction ------------------------------------------------------------------------------

# A card number stands alone: a run glued to a decimal point (the fraction of a task's run
# time, `0.4111111111111111s`, or the whole part of such a float) is a number, not a card.
_DIGIT_RUN = re.compile(r"(?<!\d)(?<!\d\.)\d(?:[ -]?\d){12,18}(?!\d)(?!\.\d)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _redact_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if 13 <= len(digits) <= 19 and _luhn_valid(digits):
        return "[REDACTED-PAN]"
    return match.group(0)


# `key: value`, `key=value`, `"key": "value"`, `'key': 'value'` (a dict's repr, JSON, a query string).
_KEY_VALUE = re.compile(
    r"""(?P<key>(?P<kq>['"]?)(?P<name>[A-Za-z][A-Za-z0-9_-]*)(?P=kq)\s*[:=]\s*)"""
    r"""(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s,;&'"}\]]+))"""
)


def _redact_key_value(match: re.Match[str]) -> str:
    name = match.group("name")
    sensitive_auth = is_hidden_key(name)
    if not sensitive_auth and not is_masked_key(name):
        return match.group(0)
    quote, value = next(
        (mark, match.group(group))
        for group, mark in (("dq", '"'), ("sq", "'"), ("bare", ""))
        if match.group(group) is not None
    )
    if "[REDACTED" in value:
        return match.group(0)
    hidden = "[REDACTED]" if sensitive_auth else mask_text(value)
    return f"{match.group('key')}{quote}{hidden}{quote}"


def redact(text: str) -> str:
    """Card numbers and IBANs anywhere; values under card, bank and security-code keys by the masking rule."""
    return _KEY_VALUE.sub(_redact_key_value, _IBAN.sub("[REDACTED-IBAN]", _DIGIT_RUN.sub(_redact_card, text)))


_EMAIL = re.compile(r"[^\s@<>()\[\],;:\"']+@[^\s@<>()\[\],;:\"']+\.[A-Za-z]{2,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def masked_reason(reason: str | None, *, default: str, limit: int = 100) -> str:
    """A gateway's free-text reason (a decline's, say) as logs, events and webhooks may carry it:
    card numbers, IBANs, values under card or bank keys and e-mail addresses masked, control
    characters folded to a space, at most `limit` characters. A gateway may echo anything."""
    if not reason:
        return default
    text = _EMAIL.sub("[REDACTED-EMAIL]", redact(reason))
    return _CONTROL.sub(" ", text).strip()[:limit] or default


class RedactingFilter(logging.Filter):
    """Renders the message, redacts it, and drops the arguments it was built from."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class ContextFilter(logging.Filter):
    """Copies the bound ids onto every record (an explicit `extra=` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, _context[name].get())
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in (*CONTEXT_FIELDS, *_EXTRA_FIELDS):
            value = getattr(record, name, None)
            if value is not None:
                # A string extra may be anything a caller passed (a reason, an error text): redacted
                # like the message.
                line[name] = value if isinstance(value, (int, float, bool)) else redact(str(value))
        if record.exc_text or record.exc_info:
            # Without exc_text, exc_info is set (the condition above); mypy cannot follow the `or`.
            line["exception"] = redact(record.exc_text or self.formatException(record.exc_info))  # type: ignore[arg-type]
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal, with the ids appended."""

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        ids = " ".join(f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if getattr(record, name, None))
        return f"{base} [{ids}]" if ids else base


# --- Request ids ----------------------------------------------------------------------------

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Takes a sane `X-Request-Id` or makes one, binds it for the request, and echoes it back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Request-Id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        with log_context(request_id=request_id, transaction_id=None, attempt=None, gateway=None):
            response = self.get_response(request)
        response["X-Request-Id"] = request_id
        return response


# --- Celery: the request id rides along in a message header ----------------------------------


def connect_celery_signals() -> None:
    from celery.signals import before_task_publish, task_postrun, task_prerun

    @before_task_publish.connect(weak=False)
    def _add_request_id(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
        request_id = current("request_id")
        if headers is not None and request_id:
            headers["paygate_request_id"] = request_id

    @task_prerun.connect(weak=False)
    def _bind(task: Any = None, **kwargs: Any) -> None:
        request = getattr(task, "request", None)
        bind(request_id=getattr(request, "paygate_request_id", None), transaction_id=None, attempt=None, gateway=None)

    @task_postrun.connect(weak=False)
    def _unbind(**kwargs: Any) -> None:
        bind(request_id=None, transaction_id=None, attempt=None, gateway=None)
