"""`manage.py run_sandbox_gateway`: `python -m sandbox` under manage.py. No database."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sandbox import cli


class Command(BaseCommand):
    help = cli.DESCRIPTION

    # The sandbox must start even with no database configured or migrated.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        cli.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        def announce(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        try:
            config = cli.run(options, announce)
        except cli.UsageError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"sandbox {config.code} stopped")
