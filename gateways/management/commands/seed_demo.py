"""`manage.py seed_demo`: the demo gateways, countries and routes (idempotent)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from gateways.services import demo_seed


class Command(BaseCommand):
    help = "Create the demo gateways (acmepay, soapbank, globex), countries and routes. Safe to run again."

    def handle(self, *args: Any, **options: Any) -> None:
        demo_seed()
        self.stdout.write("Demo gateways, countries and routes are in place.")
