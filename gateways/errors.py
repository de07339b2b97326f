"""Errors of routing: raised by services, turned into the contract's error body by core.errors."""

from __future__ import annotations

from rest_framework import status

from core.errors import ApplicationError


class NoRoute(ApplicationError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    code = "no_route"
