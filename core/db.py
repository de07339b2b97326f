"""Small database helpers shared by the apps."""

from __future__ import annotations

from collections.abc import Sequence
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


class ModelColumns:
    """A model's columns under a table alias in hand-written SQL, and its instances built from them.

    For the few statements whose text is written once per process (the hot path's): the select
    list is the text, a row becomes an instance through the fields' own converters, as the ORM
    builds it, without a query compiler per call.
    """

    def __init__(self, model: type[models.Model], alias: str, connection: Any) -> None:
        fields = model._meta.concrete_fields
        quote = connection.ops.quote_name
        self.model = model
        self.width = len(fields)
        self.sql = ", ".join(f"{alias}.{quote(field.column)}" for field in fields)
        self._db = connection.alias
        self._names = [field.attname for field in fields]
        self._converters = []
        for index, field in enumerate(fields):
            column = field.get_col(alias)
            converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
            if converters:
                self._converters.append((index, converters, column))
        self._connection = connection

    def build(self, row: Sequence[Any]) -> Any:
        """The instance of the row's columns (`row` holds exactly this model's, in order)."""
        values = list(row)
        for index, converters, column in self._converters:
            value = values[index]
            for converter in converters:
                value = converter(value, column, self._connection)
            values[index] = value
        return self.model.from_db(self._db, self._names, values)


def column_values(obj: models.Model, fields: Sequence[models.Field[Any, Any]], connection: Any) -> list[Any]:
    """The values the ORM's own save would send for these fields of `obj` (auto_now set, encrypted, adapted)."""
    adding = obj._state.adding
    return [field.get_db_prep_save(field.pre_save(obj, adding), connection) for field in fields]
