"""Requests refused before any view reads them, and `/api/` errors that keep the contract's shape."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.log import log_response

from .errors import error_body
from .text import is_storable


class RequestBodyLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.PAYGATE_MAX_BODY_BYTES
        raw_length = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw_length)
        except ValueError:
            return JsonResponse(error_body("bad_request", "Content-Length is not a number."), status=400)
        if length > limit and not request.path.startswith("/admin/"):
            return JsonResponse(
                error_body("payload_too_large", f"Request body is larger than {limit} bytes."), status=413
            )
        return self.get_response(request)


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


def api_not_found(request: HttpRequest, *args: object, **kwargs: object) -> JsonResponse:
    """Every path under `/api/` that matches no endpoint: a JSON 404, whatever DEBUG says."""
    return JsonResponse(error_body("not_found", "Not found."), status=404)
