"""Errors of gateway callbacks: raised by services, turned into the contract's error body by core.errors."""

from __future__ import annotations

from rest_framework import status

from core.errors import ApplicationError


class InvalidSignature(ApplicationError):
    status_code = status.HTTP_401_UNAUTHORIZED
    code = "invalid_signature"
