"""`manage.py create_api_key <name>`: a new key for the client of that name; the key is the last line."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from payments.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for the named client (created if new). Prints the key as the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The API client's name, e.g. the merchant's backend.")

    def handle(self, *args: Any, name: str, **options: Any) -> None:
        client, key = api_key_create(client_name=name)
        self.stdout.write(f"Created an API key for client {client.name!r}. It is shown once; store it now.")
        self.stdout.write(key)
