"""`manage.py seed_demo`: the demo gateways, countries and routes (idempotent)."""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from gateways.services import demo_seed

DEMO_STAFF = ("admin", "paygate-demo")


class Command(BaseCommand):
    help = "Create the demo gateways (acmepay, soapbank, globex), countries and routes. Safe to run again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--staff",
            action="store_true",
            help=f"Also create the demo-only admin login {DEMO_STAFF[0]} / {DEMO_STAFF[1]} if it does not exist.",
        )

    def handle(self, *args: Any, staff: bool = False, **options: Any) -> None:
        # "acmepay=http://acmepay:8101,soapbank=..." where the sandboxes are not on loopback.
        raw = os.environ.get("PAYGATE_DEMO_BASE_URLS", "")
        base_urls = dict(item.strip().split("=", 1) for item in raw.split(",") if "=" in item)
        demo_seed(base_urls=base_urls)
        self.stdout.write("Demo gateways, countries and routes are in place.")
        if staff:
            username, password = DEMO_STAFF
            User = get_user_model()
            if not User.objects.filter(username=username).exists():
                User.objects.create_superuser(username=username, email="", password=password)
                self.stdout.write(f"Demo staff login created: {username} / {password}")
