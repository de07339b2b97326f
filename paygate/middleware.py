"""Refuse oversized request bodies before anything reads them; keep API answers out of caches."""

from __future__ import annotations

import io
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from .errors import error_body

API_PREFIX = "/api/"


def _refusal(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
    """The API's error body under /api/; plain text for the admin and everything else."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse(error_body(code, message), status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


class RequestBodyLimitMiddleware:
    """One limit on every path, the admin included, checked before the body is read.

    A body announced by Content-Length is judged on that number. A streamed body (chunked,
    no Content-Length) is read here up to one byte past the limit: what fits is handed on as
    a normal body, anything larger answers 413 without reading further.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit: int = settings.PAYGATE_MAX_BODY_BYTES
        too_large = f"Request body is larger than {limit} bytes."
        raw_length = request.META.get("CONTENT_LENGTH") or ""
        if raw_length:
            try:
                length = int(raw_length)
            except ValueError:
                length = -1
            if length < 0:
                return _refusal(request, 400, "bad_request", "Content-Length is not a number.")
            if length > limit:
                return _refusal(request, 413, "payload_too_large", too_large)
        elif request.META.get("HTTP_TRANSFER_ENCODING") and "wsgi.input" in request.META:
            body = self._read_streamed(request.META["wsgi.input"], limit)
            if body is None:
                return _refusal(request, 413, "payload_too_large", too_large)
            self._use_body(request, body)
        return self.get_response(request)

    @staticmethod
    def _read_streamed(stream: io.RawIOBase, limit: int) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = stream.read(min(64 * 1024, limit + 1 - size))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
        return None

    @staticmethod
    def _use_body(request: HttpRequest, body: bytes) -> None:
        # Django reads a body only as far as CONTENT_LENGTH says (none: nothing at all).
        request.META["CONTENT_LENGTH"] = str(len(body))
        request.META["wsgi.input"] = io.BytesIO(body)
        request._stream = io.BytesIO(body)  # type: ignore[attr-defined]


class ApiNoStoreMiddleware:
    """API answers carry transaction and payment data: no browser or proxy may keep a copy."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith("/api/v1/"):
            response["Cache-Control"] = "no-store"
        return response
