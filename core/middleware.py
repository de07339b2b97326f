"""Requests refused before any view reads them, `/api/` errors that keep the contract's shape,
and API answers kept out of caches."""

from __future__ import annotations

import io
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.utils.log import log_response

from .errors import error_body
from .text import is_storable

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
        request._stream = io.BytesIO(body)


class ApiNoStoreMiddleware:
    """API answers carry transaction and payment data: no browser or proxy may keep a copy."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith("/api/v1/"):
            response["Cache-Control"] = "no-store"
        return response


class UnstorableUrlMiddleware:
    """A NUL in the path or the query string answers 400 before it can reach a database lookup."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = request.GET
        if not is_storable(request.path) or any(
            not is_storable(text) for key in query for text in (key, *query.getlist(key))
        ):
            body = error_body("bad_request", "The URL may not contain NUL characters (%00).")
            return JsonResponse(body, status=400)
        return self.get_response(request)


class ApiErrorMiddleware:
    """Under `/api/`, an exception a view did not handle answers in the contract's error shape.

    DRF's handler covers the views; this covers the rest, and DEBUG too, where Django would
    otherwise answer with its HTML debug page.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith("/api/"):
            return None
        if isinstance(exception, Http404):
            response = JsonResponse(error_body("not_found", "Not found."), status=404)
        elif isinstance(exception, PermissionDenied):
            response = JsonResponse(error_body("permission_denied", "Permission denied."), status=403)
        elif isinstance(exception, (BadRequest, SuspiciousOperation)):
            response = JsonResponse(error_body("bad_request", "Bad request."), status=400)
        else:
            response = JsonResponse(error_body("internal_error", "Internal server error."), status=500)
            log_response(
                "Internal Server Error: %s", request.path, response=response, request=request, exception=exception
            )
        return response


def api_not_found(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    """Every path under `/api/` that matches no endpoint: a JSON 404, whatever DEBUG says.

    Being a match itself, it keeps CommonMiddleware from adding a missing slash, so it does
    that here: `/api/docs` still leads to `/api/docs/` (for reads; a write is not redirected).
    """
    if settings.APPEND_SLASH and not request.path.endswith("/") and request.method in ("GET", "HEAD"):
        try:
            match = resolve(f"{request.path_info}/")
        except Resolver404:
            match = None
        if match is not None and match.func is not api_not_found:
            return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
    return JsonResponse(error_body("not_found", "Not found."), status=404)
