"""No status changes anywhere but through its owner: the writers of `status`, listed from the source.

Every assignment to a `.status` attribute, every ORM call passing `status=`, and every save whose
`update_fields` may hold "status" is found in the code (tests and migrations aside) and must be
one of the writers below. A new writer, of a transaction's status above all, fails here until it
is reviewed: a transaction's status changes only in `payments.services`, which appends the
change's event in the same database transaction.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "gateways", "payments", "callbacks", "webhooks", "ops", "paygate")
ORM_WRITES = {"update", "create", "bulk_create", "get_or_create", "update_or_create", "bulk_update"}

# (file, function) → what it writes. Transaction.status: only transaction_transition sets it and
# only transaction_save stores it (with its event; on PostgreSQL by the statement _save_statement writes).
WRITERS = {
    ("payments/services.py", "transaction_transition"): "Transaction.status (in memory, checked)",
    ("payments/services.py", "transaction_save"): "Transaction.status (stored with its event)",
    ("payments/services.py", "_save_statement"): "Transaction.status (raw SQL: _SAVE_SQL, for transaction_save)",
    ("payments/refunds/services.py", "refund_transition"): "Refund.status (in memory, checked)",
    ("payments/refunds/services.py", "refund_save"): "Refund.status (stored with its event)",
    ("webhooks/dispatcher.py", "_results_write"): "WebhookDelivery.status (raw SQL: _RECORD_SQL)",
}
# SQL that sets a status (`SET status = …`), in a string constant of the module that runs it.
_SQL_SETS_STATUS = re.compile(r"\bSET\b(?:(?!\bWHERE\b)[^;])*?\bstatus\s*=", re.IGNORECASE | re.DOTALL)


def _field_constants() -> dict[str, tuple[str, ...]]:
    """The models' named tuples of update fields (e.g. ATTEMPT_RESULT_FIELDS), by name."""
    from payments import models

    constants = vars(models).items()
    return {name: value for name, value in constants if name.endswith("_FIELDS") and isinstance(value, tuple)}


_FIELD_CONSTANTS = _field_constants()


def _writes_status(node: ast.AST) -> bool:
    if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        flat: list[ast.AST] = []
        for target in targets:
            flat.extend(target.elts if isinstance(target, ast.Tuple) else [target])
        return any(isinstance(t, ast.Attribute) and t.attr == "status" for t in flat)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr in ORM_WRITES and any(k.arg == "status" for k in node.keywords):
            return True
        if node.func.attr == "save":
            for keyword in node.keywords:
                if keyword.arg != "update_fields":
                    continue
                value = keyword.value
                if isinstance(value, (ast.List, ast.Tuple)):
                    return any(isinstance(e, ast.Constant) and e.value == "status" for e in value.elts)
                if isinstance(value, ast.Name) and value.id in _FIELD_CONSTANTS:
                    return "status" in _FIELD_CONSTANTS[value.id]
                return True  # a variable: it may hold "status"
    return False


def status_writers() -> Iterator[tuple[str, str]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).parts
            if "tests" in parts or "migrations" in parts:
                continue
            tree = ast.parse(path.read_text())
            sql = _sql_constants(tree)
            for function in ast.walk(tree):
                if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                if any(_writes_status(node) or _runs_sql(node, sql) for node in ast.walk(function)):
                    yield "/".join(parts), function.name


def _sql_constants(tree: ast.Module) -> set[str]:
    """Names of the module's string constants whose SQL sets a status."""
    names = set()
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        value = node.value
        if isinstance(value, ast.Constant) and isinstance(value.value, str) and _SQL_SETS_STATUS.search(value.value):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _runs_sql(node: ast.AST, names: set[str]) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(_SQL_SETS_STATUS.search(node.value))
    return isinstance(node, ast.Name) and node.id in names


def test_only_the_owners_write_a_status() -> None:
    found = set(status_writers())
    # A function nested in another is listed under both: keep the innermost names the table uses.
    unexpected = {writer for writer in found if writer not in WRITERS}
    assert not unexpected, f"status written outside its owner: {sorted(unexpected)}"
    assert set(WRITERS) <= found, f"listed writers no longer found: {sorted(set(WRITERS) - found)}"


def test_the_scan_sees_a_writer_it_is_not_told_about(tmp_path: Path) -> None:
    """The scan itself bites: each form of a status write is found."""
    for source in (
        "def f(txn):\n    txn.status = 'completed'\n",
        "def f(qs):\n    qs.update(status='failed')\n",
        "def f(txn):\n    txn.save(update_fields=['status'])\n",
        "def f(txn, fields):\n    txn.save(update_fields=fields)\n",
    ):
        function = ast.parse(source).body[0]
        assert any(_writes_status(node) for node in ast.walk(function)), source
    assert not any(_writes_status(n) for n in ast.walk(ast.parse("def f(t):\n    t.save(update_fields=['x'])\n")))
    module = ast.parse('Q = """UPDATE t\n SET status = %s WHERE id = %s"""\ndef f(c):\n    c.execute(Q)\n')
    assert any(_runs_sql(n, _sql_constants(module)) for n in ast.walk(module))
    other = ast.parse('Q = "UPDATE t SET x = 1 WHERE status = %s"\ndef f(c):\n    c.execute(Q)\n')
    assert not any(_runs_sql(n, _sql_constants(other)) for n in ast.walk(other))
