"""Small database helpers shared by the apps."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from django.db import models, transaction
from django.db.models import Expression


def single_statement(using: str | None = None) -> AbstractContextManager[object]:
    """Wrap one write whose IntegrityError the caller handles.

    Outside a transaction the statement commits on its own (autocommit), which spares the
    round trips of a BEGIN and a COMMIT; `transaction.on_commit` then runs at once, after it.
    Inside one, a savepoint keeps the enclosing transaction usable after the error.
    """
    if transaction.get_connection(using).in_atomic_block:
        return transaction.atomic(using)
    return nullcontext()


class _VendorSQL(Expression):
    """A bigint from PostgreSQL's transaction-id functions; a constant where writers are serial."""

    postgresql_sql = ""
    fallback_sql = "0"

    def __init__(self) -> None:
        super().__init__(output_field=models.BigIntegerField())

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        return self.fallback_sql, []

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        return self.postgresql_sql, []


class CurrentTransactionId(_VendorSQL):
    """The id of the database transaction writing the row (PostgreSQL assigns it on first use)."""

    postgresql_sql = "pg_current_xact_id()::text::bigint"


class OwnTransactionId(_VendorSQL):
    """This session's transaction id if it has written anything yet, else NULL."""

    postgresql_sql = "pg_current_xact_id_if_assigned()::text::bigint"
    fallback_sql = "NULL"


class CompletedHorizon(_VendorSQL):
    """Every transaction id below this has committed or rolled back, as this statement sees it.

    Rows written by ids below it can no longer appear: a reader that pages in (txid, id)
    order up to the horizon never skips one that commits later. Where writers are serial
    (SQLite: one write lock, held until commit) rows appear in id order and this is unbounded.
    """

    postgresql_sql = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
    fallback_sql = "9223372036854775807"
