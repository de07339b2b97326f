"""Small database helpers shared by the apps."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from django.db import transaction


def single_statement(using: str | None = None) -> AbstractContextManager[object]:
    """Wrap one write whose IntegrityError the caller handles.

    Outside a transaction the statement commits on its own (autocommit), which spares the
    round trips of a BEGIN and a COMMIT; `transaction.on_commit` then runs at once, after it.
    Inside one, a savepoint keeps the enclosing transaction usable after the error.
    """
    if transaction.get_connection(using).in_atomic_block:
        return transaction.atomic(using)
    return nullcontext()
