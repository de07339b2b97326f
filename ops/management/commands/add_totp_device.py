"""`manage.py add_totp_device <username>`: a TOTP second factor for an admin user.

Prints the otpauth:// URL to load into an authenticator app (as a QR code, e.g. with
`qrencode -t ansiutf8 '<url>'`, or typed in); the secret is shown once, here.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = "Add a TOTP device (an authenticator app) to an admin user; prints its otpauth:// URL once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="authenticator", help="What to call the device (default: authenticator).")

    def handle(self, *args: Any, username: str, name: str, **options: Any) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        device = TOTPDevice.objects.create(user=user, name=name, confirmed=True)
        self.stdout.write(f"Added a TOTP device to {username!r}. Load this URL into an authenticator app now:")
        self.stdout.write(device.config_url)
