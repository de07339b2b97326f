"""Errors of transactions: raised by services, turned into the contract's error body by core.errors."""

from __future__ import annotations

from rest_framework import status

from core.errors import ApplicationError


class IdempotencyConflict(ApplicationError):
    status_code = status.HTTP_409_CONFLICT
    code = "idempotency_conflict"


class NotRefundable(ApplicationError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    code = "not_refundable"


class AmountExceedsRefundable(ApplicationError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    code = "amount_exceeds_refundable"


class InvalidRefundAmount(ApplicationError):
    """A well-formed amount with more decimals than the deposit's currency has."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    code = "invalid_amount"
