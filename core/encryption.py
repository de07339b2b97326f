"""Key rotation for every Fernet-encrypted column (FERNET_KEYS, newest first)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.db import connection, models, transaction
from fernet_fields import EncryptedField

logger = logging.getLogger(__name__)


@dataclass
class RotationReport:
    rotated: int = 0
    current: int = 0  # already under the newest key
    changed_meanwhile: int = 0  # rewritten by the service between our read and write: already current
    unreadable: int = 0  # no key in FERNET_KEYS decrypts it: a key was removed too early
    per_column: dict[str, int] = field(default_factory=dict)


def encrypted_columns() -> Iterator[tuple[type[models.Model], EncryptedField]]:
    for model in apps.get_models():
        for model_field in model._meta.concrete_fields:
            if isinstance(model_field, EncryptedField):
                yield model, model_field


def encryption_keys_rotate(*, batch_size: int = 500, dry_run: bool = False) -> RotationReport:
    """Re-encrypt every value that is not under the newest key yet.

    Batches by primary key, each batch in its own short transaction. A value that already
    decrypts with the newest key is left alone, so a run that stopped half-way is simply
    run again. Each write is compare-and-swap on the old ciphertext: a value the service
    rewrote meanwhile (always with the newest key) is not overwritten.
    """
    report = RotationReport()
    quote = connection.ops.quote_name
    # Every backend's wrapper carries its DB-API module (for Binary); django-stubs' base class does not.
    database_api: Any = connection.Database  # type: ignore[attr-defined]
    for model, column in encrypted_columns():
        newest = Fernet(column.fernet_keys[0])
        every_key = MultiFernet([Fernet(key) for key in column.fernet_keys])
        table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
        name = quote(column.column)
        label = f"{model._meta.label}.{column.name}"
        report.per_column[label] = 0
        last = None
        while True:
            where = "" if last is None else f" WHERE {pk} > %s"
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT {pk}, {name} FROM {table}{where} ORDER BY {pk} LIMIT %s",  # nosec B608  # names are quoted identifiers
                    ([] if last is None else [last]) + [batch_size],
                )
                rows = cursor.fetchall()
            if not rows:
                break
            last = rows[-1][0]
            with transaction.atomic():
                for row_pk, raw in rows:
                    if raw is None:
                        continue
                    token = bytes(raw)
                    try:
                        newest.decrypt(token)
                        report.current += 1
                        continue
                    except InvalidToken:
                        pass
                    try:
                        rotated = every_key.rotate(token)
                    except InvalidToken:
                        report.unreadable += 1
                        logger.error("key rotation: %s row %s decrypts with no key in FERNET_KEYS", label, row_pk)
                        continue
                    if dry_run:
                        report.rotated += 1
                        report.per_column[label] += 1
                        continue
                    with connection.cursor() as cursor:
                        cursor.execute(
                            f"UPDATE {table} SET {name} = %s WHERE {pk} = %s AND {name} = %s",  # nosec B608  # quoted identifiers
                            [database_api.Binary(rotated), row_pk, database_api.Binary(token)],
                        )
                        changed = cursor.rowcount
                    if changed:
                        report.rotated += 1
                        report.per_column[label] += 1
                    else:
                        report.changed_meanwhile += 1
        logger.info("key rotation: %s re-encrypted %s value(s)", label, report.per_column[label])
    return report
