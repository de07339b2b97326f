"""`manage.py rotate_encryption_keys`: re-encrypt everything under the newest of FERNET_KEYS."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.encryption import encryption_keys_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted value under the newest key in FERNET_KEYS. Safe while the service "
        "runs and safe to run again (it resumes). Afterwards the old keys can be removed from FERNET_KEYS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--dry-run", action="store_true", help="Count what would be re-encrypted.")

    def handle(self, *args: Any, batch_size: int, dry_run: bool, **options: Any) -> None:
        report = encryption_keys_rotate(batch_size=batch_size, dry_run=dry_run)
        for label, count in report.per_column.items():
            self.stdout.write(f"{label}: {count} re-encrypted")
        verb = "would re-encrypt" if dry_run else "re-encrypted"
        self.stdout.write(
            f"{verb} {report.rotated}; already current {report.current}; "
            f"rewritten by the service meanwhile {report.changed_meanwhile}; unreadable {report.unreadable}"
        )
        if report.unreadable:
            raise CommandError(f"{report.unreadable} value(s) decrypt with no key in FERNET_KEYS")
