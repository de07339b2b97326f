"""`manage.py run_sandbox_gateway`: serve one fake gateway until SIGTERM/SIGINT. No database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sandbox.server import SandboxConfig, default_api_key, default_webhook_secret, run_forever


class Command(BaseCommand):
    help = "Run a sandbox payment gateway (JSON or SOAP) over HTTP, for tests and local runs."

    # The sandbox must start even with no database configured or migrated.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--code", required=True, help="Gateway code, e.g. 'alpha'.")
        parser.add_argument("--format", required=True, choices=["json", "xml"], help="Wire protocol.")
        parser.add_argument("--port", required=True, type=int, help="Port to listen on (0: any free port).")
        parser.add_argument("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1).")
        parser.add_argument("--api-key", default=None, help="Expected API key (default demo-<code>-api-key).")
        parser.add_argument(
            "--webhook-secret", default=None, help="Callback signing secret (default demo-<code>-webhook-secret)."
        )
        parser.add_argument(
            "--callback-delay", type=float, default=0.5, help="Seconds before a callback is sent (default 0.5)."
        )
        parser.add_argument(
            "--timeout-delay", type=float, default=15.0, help="Seconds `timeout` mode holds answers (default 15)."
        )
        parser.add_argument("--state-file", type=Path, default=None, help="Persist payments to this JSON file.")

    def handle(self, *args: Any, **options: Any) -> None:
        code: str = options["code"]
        if not code.strip():
            raise CommandError("--code must not be empty")
        if not 0 <= options["port"] <= 65535:
            raise CommandError("--port must be between 0 and 65535")
        if options["callback_delay"] < 0 or options["timeout_delay"] < 0:
            raise CommandError("--callback-delay and --timeout-delay must not be negative")
        config = SandboxConfig(
            code=code,
            format=options["format"],
            host=options["host"],
            port=options["port"],
            api_key=options["api_key"] or default_api_key(code),
            webhook_secret=options["webhook_secret"] or default_webhook_secret(code),
            callback_delay=options["callback_delay"],
            timeout_delay=options["timeout_delay"],
            state_file=options["state_file"],
        )

        def announce(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        try:
            run_forever(config, announce)
        except (OSError, ValueError) as exc:  # e.g. the port is taken, the state file is unreadable
            raise CommandError(f"sandbox {code} on {config.host}:{config.port}: {exc}") from exc
        self.stdout.write(f"sandbox {code} stopped")
