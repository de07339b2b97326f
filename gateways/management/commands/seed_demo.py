"""`manage.py seed_demo`: the demo gateways, countries and routes (idempotent)."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateways.services import demo_seed

DEMO_STAFF = ("admin", "paygate-demo")
# The demo login runs the gateways but is not a superuser: its password is published.
DEMO_STAFF_GROUP = "operators"


class Command(BaseCommand):
    help = (
        "Create the demo gateways (acmepay, soapbank, globex), countries and routes. Safe to run again. "
        "Their credentials are public: with DEBUG off it refuses unless given --demo."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--staff",
            action="store_true",
            help=f"Also create the demo-only admin login {DEMO_STAFF[0]} / {DEMO_STAFF[1]} "
            f"(group {DEMO_STAFF_GROUP}) if it does not exist.",
        )
        parser.add_argument(
            "--demo",
            action="store_true",
            help="Confirm that this database is a demo: required when DEBUG is off.",
        )

    def handle(self, *args: Any, staff: bool = False, demo: bool = False, **options: Any) -> None:
        if not settings.DEBUG and not demo:
            raise CommandError(
                "DEBUG is off: the demo gateways' credentials are published, so anyone could forge their "
                "callbacks. Run `seed_demo --demo` only on a demo deployment."
            )
        # "acmepay=http://acmepay:8101,soapbank=..." where the sandboxes are not on loopback.
        raw = os.environ.get("PAYGATE_DEMO_BASE_URLS", "")
        base_urls = dict(item.strip().split("=", 1) for item in raw.split(",") if "=" in item)
        demo_seed(base_urls=base_urls)
        self.stdout.write("Demo gateways, countries and routes are in place.")
        if staff:
            self._demo_staff()

    def _demo_staff(self) -> None:
        username, password = DEMO_STAFF
        User = get_user_model()
        group = Group.objects.get(name=DEMO_STAFF_GROUP)
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_user(username=username, email="", password=password, is_staff=True)
            self.stdout.write(f"Demo staff login created: {username} / {password} ({DEMO_STAFF_GROUP})")
        if user.check_password(password):
            user.groups.add(group)
