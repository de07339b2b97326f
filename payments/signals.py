"""Signals of the payments app, for the apps layered above it (which payments never imports)."""

from django.dispatch import Signal

# Sent with `event` (a payments.models.Event) right after the row is written, inside the
# database transaction that wrote it: a receiver's writes commit or roll back with it.
event_recorded = Signal()
