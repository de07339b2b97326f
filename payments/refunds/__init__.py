"""Refunds (CONTRACT §9), shaped as transactions are: `services` creates them and owns their status,
`processing` sends them to the deposit's gateway; callbacks settle them through `payments.settlement`."""

from .services import refund_create

__all__ = ["refund_create"]
