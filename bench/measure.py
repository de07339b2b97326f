"""What the bench measures and reads back: transactions from the databases, PostgreSQL's counters and
statements, webhook deliveries, the sandboxes' records, CPU by process kind, and the summaries of them.

The phases that drive load and call these are in bench/phases.py.
"""

from __future__ import annotations

import base64
import json
import os
import re
import statistics
import subprocess
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from bench import stack

if TYPE_CHECKING:
    from bench import load
from harness.receiver import Received

FINAL = ("completed", "failed")


# --- reading transactions back -----------------------------------------------------------------


# The PostgreSQL backends serving the bench's own reads (polling for final states, sampling the
# backlog): their CPU is the load generator's, not Paygate's or the floor's.
BENCH_BACKENDS: set[int] = set()


def _connect(dsn: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(dsn, autocommit=True)
    BENCH_BACKENDS.add(conn.info.backend_pid)
    return conn


class BenchDb:
    """The bench database, read directly; reconnects if the server drops the connection, and says so.

    PostgreSQL is shared with other work on the machine, which may restart it: the bench
    then goes on (Paygate is expected to survive that too) and the report flags the run.
    """

    def __init__(self, dsn: str, *, reconnect_timeout: float = 120.0) -> None:
        self.dsn = dsn
        self.reconnect_timeout = reconnect_timeout
        self.interruptions: list[dict[str, Any]] = []
        self._conn: psycopg.Connection[Any] | None = _connect(dsn)

    def execute(self, sql: str, params: Any = None) -> psycopg.Cursor[Any]:
        try:
            return self._connection().execute(sql, params)
        except psycopg.OperationalError as exc:
            self.interruptions.append({"at": time.time(), "error": f"{type(exc).__name__}: {exc}"[:300]})
            self.close()
            return self._connection().execute(sql, params)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = stack.wait_for(
                self._try_connect,
                timeout=self.reconnect_timeout,
                interval=0.5,
                what="the bench database to accept connections again",
            )
        return self._conn

    def _try_connect(self) -> psycopg.Connection[Any] | None:
        try:
            return _connect(self.dsn)
        except psycopg.OperationalError:
            return None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


@dataclass(frozen=True, slots=True)
class TxnRow:
    id: str
    status: str
    failure_reason: str | None
    created_at: float
    finished_at: float | None
    gateway_ms: float  # sum of the attempts' latency_ms
    attempts: int
    first_attempt_at: float | None
    last_attempt_at: float | None
    callback_received_at: float | None
    callback_processed_at: float | None

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def e2e_ms(self) -> float | None:
        return None if self.finished_at is None else (self.finished_at - self.created_at) * 1000

    @property
    def overhead_ms(self) -> float | None:
        e2e = self.e2e_ms
        return None if e2e is None else e2e - self.gateway_ms


_ROWS_SQL = """
WITH a AS (
    SELECT transaction_id, coalesce(sum(latency_ms), 0) AS gateway_ms, count(*) AS attempts,
           extract(epoch FROM min(created_at)) AS first_at, extract(epoch FROM max(created_at)) AS last_at
    FROM payments_attempt WHERE transaction_id = ANY(%(ids)s::uuid[]) GROUP BY transaction_id
), e AS (
    SELECT transaction_id, extract(epoch FROM min(received_at)) AS received_at,
           extract(epoch FROM max(processed_at)) AS processed_at
    FROM callbacks_callbackevent WHERE transaction_id = ANY(%(ids)s::uuid[]) AND result = 'applied'
    GROUP BY transaction_id
)
SELECT t.id::text, t.status, t.failure_reason, extract(epoch FROM t.created_at), extract(epoch FROM t.finished_at),
       coalesce(a.gateway_ms, 0), coalesce(a.attempts, 0), a.first_at, a.last_at, e.received_at, e.processed_at
FROM payments_transaction t LEFT JOIN a ON a.transaction_id = t.id LEFT JOIN e ON e.transaction_id = t.id
WHERE t.id = ANY(%(ids)s::uuid[])
"""


def _floats(row: Sequence[Any]) -> list[Any]:
    return [float(value) if value is not None and not isinstance(value, str) else value for value in row]


def fetch_rows(db: BenchDb, ids: Iterable[str]) -> dict[str, TxnRow]:
    id_list = list(ids)
    if not id_list:
        return {}
    rows = db.execute(_ROWS_SQL, {"ids": id_list}).fetchall()
    out = {}
    for raw in rows:
        values = _floats(raw)
        values[6] = int(values[6])
        out[values[0]] = TxnRow(*values)
    return out


def scalar(db: BenchDb, sql: str, params: Sequence[Any] = ()) -> int:
    row = db.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


def count_final(db: BenchDb, ids: Sequence[str]) -> int:
    return scalar(
        db,
        "SELECT count(*) FROM payments_transaction WHERE id = ANY(%s::uuid[]) AND status IN ('completed', 'failed')",
        [list(ids)],
    )


def wait_all_final(
    db: BenchDb, ids: Sequence[str], *, timeout: float, alive: Any = None, count: Any = None
) -> tuple[bool, float]:
    """Poll until every id is final (`count`: count_final, or floor_count_final on the floor's database);
    (all final?, seconds waited). Never raises on the deadline."""
    counter = count or count_final
    started = time.monotonic()
    try:
        stack.wait_for(
            lambda: counter(db, ids) >= len(ids),
            timeout=timeout,
            interval=0.25,
            what=f"{len(ids)} transactions to be final",
            alive=alive,
        )
        return True, time.monotonic() - started
    except stack.BenchError as exc:
        if "timed out" not in str(exc):
            raise
        return False, time.monotonic() - started


# --- the floor's transactions (on its own database) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class FloorRow:
    id: str
    status: str
    created_at: float
    finished_at: float | None

    @property
    def final(self) -> bool:
        return self.status in FINAL


def floor_count_final(db: BenchDb, ids: Sequence[str]) -> int:
    return scalar(
        db,
        "SELECT count(*) FROM floor_floortransaction WHERE id = ANY(%s::uuid[]) AND status IN ('completed', 'failed')",
        [list(ids)],
    )


def floor_fetch_rows(db: BenchDb, ids: Iterable[str]) -> dict[str, FloorRow]:
    id_list = list(ids)
    if not id_list:
        return {}
    rows = db.execute(
        "SELECT id::text, status, extract(epoch FROM created_at), extract(epoch FROM finished_at) "
        "FROM floor_floortransaction WHERE id = ANY(%s::uuid[])",
        [id_list],
    ).fetchall()
    return {r[0]: FloorRow(r[0], r[1], float(r[2]), None if r[3] is None else float(r[3])) for r in rows}


def floor_e2e_summary(rows: dict[str, FloorRow], ids: Sequence[str]) -> dict[str, Any]:
    """As e2e_summary, for the floor: finished/s and accept→final from its rows' timestamps."""
    present = [rows[i] for i in ids if i in rows]
    final = [row for row in present if row.final and row.finished_at is not None]
    out: dict[str, Any] = {
        "transactions": len(ids),
        "final": len(final),
        "statuses": dict(Counter(row.status for row in present)),
    }
    finished = [row.finished_at for row in final if row.finished_at is not None]
    if final:
        first, last = min(row.created_at for row in final), max(finished)
        out["span_s"] = round(last - first, 3)
        out["finished_per_s"] = round(len(final) / max(last - first, 1e-9), 2)
    out["accept_to_final_ms"] = summary(
        [(row.finished_at - row.created_at) * 1000 for row in final if row.finished_at is not None]
    )
    return out


# --- PostgreSQL's own counters and statements ---------------------------------------------------------

PG_COUNTERS = (
    "xact_commit",
    "xact_rollback",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
    "blks_hit",
    "blks_read",
)


def pg_counters(db: BenchDb, names: Sequence[str], *, settle: float) -> dict[str, dict[str, int]]:
    """pg_stat_database's counters of each database, `settle` seconds from now.

    A backend flushes its counters when it goes idle, but at most once a second, and what it
    could not flush then waits for its idle timeout (10 s in PostgreSQL 15): read after that.
    """
    time.sleep(settle)  # PostgreSQL's own flush interval, not a synchronisation
    columns = ", ".join(PG_COUNTERS)
    rows = db.execute(
        f"SELECT datname, {columns} FROM pg_stat_database WHERE datname = ANY(%s)",  # noqa: S608 - constants
        [list(names)],
    ).fetchall()
    return {row[0]: dict(zip(PG_COUNTERS, (int(v) for v in row[1:]), strict=True)) for row in rows}


def pg_counters_per_transaction(
    before: Mapping[str, int], after: Mapping[str, int], transactions: int
) -> dict[str, float]:
    if transactions <= 0 or not before or not after:
        return {}
    return {name: round((after.get(name, 0) - before.get(name, 0)) / transactions, 2) for name in PG_COUNTERS}


def pg_log_path() -> Path | None:
    """The server log of the cluster on port 5432, where statement logging writes (Debian's layout)."""
    try:
        listing = subprocess.run(
            ["pg_lsclusters", "--no-header"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except OSError:
        return None
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 7 and fields[2] == "5432" and fields[6].startswith("/"):
            path = Path(fields[6])
            return path if path.exists() else None
    return None


_STATEMENT = re.compile(r"@(\S+) LOG:  (?:statement|execute [^:]*): +(\w+)")


def count_statements(log: Path, start: int, end: int) -> dict[str, Counter[str]]:
    """Statements logged (log_statement = all) between two offsets of the server log, by database and verb."""
    with open(log, "rb") as handle:
        handle.seek(start)
        text = handle.read(max(end - start, 0)).decode(errors="replace")
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for match in _STATEMENT.finditer(text):
        counts[match.group(1)][match.group(2).upper()] += 1
    return counts


class BacklogSampler:
    """A background thread sampling, every `interval`, the Celery queue's depth and the transactions
    created since `since` (wall clock) that are not final yet: shows a backlog building up, and whether the
    queue holds more messages than there is work left (duplicates published by the sweeps)."""

    def __init__(self, since: float, *, interval: float = 0.5) -> None:
        self.since, self.interval = since, interval
        self.origin = time.time()
        self.samples: list[tuple[float, int, int, int]] = []  # (t, queue depth, pending, processing)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-backlog", daemon=True)

    def __enter__(self) -> BacklogSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        db = BenchDb(stack.PSYCOPG_DSN)
        try:
            while not self._stop.wait(self.interval):
                counts = dict(
                    db.execute(
                        "SELECT status, count(*) FROM payments_transaction WHERE created_at >= to_timestamp(%s) "
                        "AND status IN ('pending', 'processing') GROUP BY status",
                        [self.since],
                    ).fetchall()
                )
                self.samples.append(
                    (
                        round(time.time() - self.origin, 2),
                        stack.queue_length("celery"),
                        int(counts.get("pending", 0)),
                        int(counts.get("processing", 0)),
                    )
                )
        except Exception as exc:  # a sampler must never break the run it watches
            self.samples.append((round(time.time() - self.origin, 2), -1, -1, -1))
            print(f"  ! backlog sampler stopped: {exc}", flush=True)
        finally:
            db.close()

    def summary(self) -> dict[str, Any]:
        valid = [s for s in self.samples if s[1] >= 0]
        if not valid:
            return {}
        return {
            "max_queue_depth": max(s[1] for s in valid),
            "max_not_final": max(s[2] + s[3] for s in valid),
            "max_queue_depth_over_not_final": max((s[1] - s[2] - s[3] for s in valid), default=0),
        }


def amplification(db: BenchDb, ids: Sequence[str]) -> dict[str, Any]:
    """Work beyond one process task and one callback per transaction: look-ups, late or repeated callbacks."""
    lookups = db.execute(
        "SELECT coalesce(sum(lookup_count), 0), count(*) FILTER (WHERE lookup_count > 0) "
        "FROM payments_transaction WHERE id = ANY(%s::uuid[])",
        [list(ids)],
    ).fetchone()
    events = db.execute(
        "SELECT e.result, count(*) FROM callbacks_callbackevent e JOIN payments_attempt a ON a.id::text = e.reference "
        "WHERE a.transaction_id = ANY(%s::uuid[]) GROUP BY e.result",
        [list(ids)],
    ).fetchall()
    assert lookups is not None
    return {
        "status_lookups": int(lookups[0]),
        "transactions_looked_up": int(lookups[1]),
        "callback_events_by_result": {result: int(count) for result, count in events},
    }


# --- the `webhooks` phase: one endpoint subscribed to every event (`*`) ----------------------------

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def webhook_endpoint_call(web_url: str, api_key: str, *, method: str, path: str = "", payload: Any = None) -> Any:
    """`/api/v1/webhook-endpoints{path}` through the public API; the JSON answer (None if empty)."""
    request = urllib.request.Request(
        f"{web_url}/api/v1/webhook-endpoints{path}",
        data=None if payload is None else json.dumps(payload).encode(),
        headers={"Authorization": f"Api-Key {api_key}", "Content-Type": "application/json"},
        method=method,
    )
    with _NO_PROXY.open(request, timeout=15) as response:
        body = response.read()
    return json.loads(body) if body else None


def delivered_transactions(received: Sequence[Received]) -> set[str]:
    """The transactions whose `transaction.completed` event the receiver got."""
    return {item.json()["data"]["object"]["id"] for item in received if item.json()["type"] == "transaction.completed"}


def deliveries_outstanding(db: BenchDb, ids: Sequence[str]) -> int:
    """Deliveries of these transactions' events not yet ended (pending in the outbox)."""
    row = db.execute(
        "SELECT count(*) FROM webhooks_webhookdelivery d JOIN payments_event e ON e.id = d.event_id "
        "WHERE e.transaction_id = ANY(%s::uuid[]) AND d.status = 'pending'",
        [list(ids)],
    ).fetchone()
    return int(row[0]) if row else 0


def finished_per_s_until(rows: Mapping[str, TxnRow], received: Sequence[Received]) -> float | None:
    """Final transactions per second, from the first one created to the last delivery's arrival."""
    final = [row for row in rows.values() if row.final]
    if not final or not received:
        return None
    first = min(row.created_at for row in final)
    last = max(max(item.at for item in received), max(row.finished_at or 0.0 for row in final))
    return round(len(final) / max(last - first, 1e-9), 2)


def webhook_summary(
    received: Sequence[Received], rows: Mapping[str, TxnRow], *, secret: str, db: BenchDb
) -> dict[str, Any]:
    """What the receiver got for the transactions in `rows`, checked against the outbox's rows.

    Every event is checked received once and signed both ways (Paygate-Signature and Standard
    Webhooks). Lag: from the transaction's `finished_at` (the commit that wrote its completion
    event) to that event's arrival; for every event, from the event's commit to its arrival.
    """
    from standardwebhooks import Webhook

    # The secret in the form Standard Webhooks libraries read (secrets made before that signing
    # were URL-safe base64: the same bytes, docs/contract.md §8).
    key = base64.urlsafe_b64decode(secret.removeprefix("whsec_").replace("+", "-").replace("/", "_").rstrip("=") + "==")
    verifier = Webhook("whsec_" + base64.b64encode(key).decode())
    mine = [item for item in received if item.json()["data"]["object"]["id"] in rows]
    first: dict[str, Received] = {}
    for item in sorted(mine, key=lambda r: r.at):
        first.setdefault(item.headers.get("Paygate-Event-Id", ""), item)
    completed = {txn_id for txn_id, row in rows.items() if row.status == "completed"}
    completions = [item for item in first.values() if item.json()["type"] == "transaction.completed"]
    lags = [
        (item.at - finished) * 1000
        for item in completions
        if (finished := rows[item.json()["data"]["object"]["id"]].finished_at) is not None
    ]
    created = {
        f"evt_{uid.hex}": float(at)
        for uid, at in db.execute(
            "SELECT uid, extract(epoch FROM created_at) FROM payments_event WHERE transaction_id = ANY(%s::uuid[])",
            [sorted(rows)],
        ).fetchall()
    }
    event_lags = [(item.at - created[key]) * 1000 for key, item in first.items() if key in created]
    statuses = dict(
        db.execute(
            "SELECT d.status, count(*) FROM webhooks_webhookdelivery d JOIN payments_event e ON e.id = d.event_id "
            "WHERE e.transaction_id = ANY(%s::uuid[]) GROUP BY d.status",
            [sorted(rows)],
        ).fetchall()
    )

    def standard_valid(item: Received) -> bool:
        try:
            verifier.verify(item.body, item.headers)
        except Exception:
            return False
        return True

    return {
        "completed_transactions": len(completed),
        "events": len(created),
        "events_delivered": len(set(first) & set(created)),
        "delivered": len(delivered_transactions(completions)),
        "not_delivered": len(completed - delivered_transactions(completions)),
        "duplicates": len(mine) - len(first),
        "bad_signatures": sum(1 for item in mine if not item.signature_valid(secret)),
        "bad_standard_signatures": sum(1 for item in mine if not standard_valid(item)),
        "outbox_rows_by_status": {str(k): int(v) for k, v in statuses.items()},
        "lag_ms": summary(lags),
        "event_lag_ms": summary(event_lags),
    }


# --- analysis ------------------------------------------------------------------------------------


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """count, mean, min, max, p50, p95 and p99 (linear interpolation between closest ranks), in 3 decimals."""
    if not values:
        return {"count": 0, "mean": None, "min": None, "max": None, "p50": None, "p95": None, "p99": None}
    cuts = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else [values[0]] * 99
    return {
        "count": len(values),
        "mean": round(statistics.fmean(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        **{f"p{q}": round(cuts[q - 1], 3) for q in (50, 95, 99)},
    }


def per_second(times: Sequence[float], *, origin: float) -> list[int]:
    """Counts per second of events at wall-clock `times`, from `origin` (for the charts)."""
    if not times:
        return []
    bins = [0] * (int(max(max(times) - origin, 0)) + 1)
    for t in times:
        bins[max(int(t - origin), 0)] += 1
    return bins


def api_summary(result: load.LoadResult) -> dict[str, Any]:
    accepted = result.accepted
    latencies = [record.latency_s * 1000 for record in accepted]
    errors = Counter(str(record.status) for record in result.records if record.status != 202)
    samples = [f"{r.status}: {r.error}" for r in result.records if r.status != 202][:5]
    return {
        "requests": len(result.records),
        "accepted": len(accepted),
        "not_accepted_by_status": dict(errors),
        "not_accepted_samples": samples,
        "duration_s": round(result.duration_s, 3),
        "accepted_per_s": round(len(accepted) / result.duration_s, 2),
        "latency_ms": summary(latencies),
    }


def breakdown(rows: Iterable[TxnRow]) -> dict[str, Any]:
    """Where the time between accept and final goes, per transaction (single-attempt ones)."""
    pickup: list[float] = []
    gateway: list[float] = []
    to_callback: list[float] = []
    apply: list[float] = []
    overhead: list[float] = []
    e2e: list[float] = []
    for row in rows:
        finished, started, received = row.finished_at, row.first_attempt_at, row.callback_received_at
        if not row.final or finished is None:
            continue
        e2e.append((finished - row.created_at) * 1000)
        overhead.append((finished - row.created_at) * 1000 - row.gateway_ms)
        if row.attempts == 1 and started is not None and received is not None:
            call_end = started + row.gateway_ms / 1000
            pickup.append((started - row.created_at) * 1000)
            gateway.append(row.gateway_ms)
            to_callback.append((received - call_end) * 1000)
            apply.append((finished - received) * 1000)
    return {
        "accept_to_final_ms": summary(e2e),
        "overhead_ms": summary(overhead),
        "parts_ms": {
            "accept_to_attempt_row (publish, queue wait, pick-up, routing)": summary(pickup),
            "gateway_call (attempt latency_ms)": summary(gateway),
            "call_end_to_callback_stored (record result, gateway sends callback, web stores it)": summary(to_callback),
            "callback_stored_to_final (answer, then apply in the web process)": summary(apply),
        },
    }


def e2e_summary(rows: dict[str, TxnRow], ids: Sequence[str]) -> dict[str, Any]:
    present = [rows[i] for i in ids if i in rows]
    final = [row for row in present if row.final and row.finished_at is not None]
    statuses = Counter(row.status if row.status != "failed" else f"failed:{row.failure_reason}" for row in present)
    out: dict[str, Any] = {
        "transactions": len(ids),
        "final": len(final),
        "statuses": dict(statuses),
        "attempts_per_transaction": dict(Counter(row.attempts for row in present)),
    }
    finished = [row.finished_at for row in final if row.finished_at is not None]
    if final:
        first, last = min(row.created_at for row in final), max(finished)
        out["span_s"] = round(last - first, 3)
        out["finished_per_s"] = round(len(final) / max(last - first, 1e-9), 2)
    out.update(breakdown(present))
    return out


def drain_summary(rows: dict[str, TxnRow], ids: Sequence[str]) -> dict[str, Any]:
    """A backlog of pending transactions processed from the first attempt on (workers started late)."""
    present = [rows[i] for i in ids if i in rows]
    final = [row for row in present if row.final and row.finished_at is not None]
    starts = [row.first_attempt_at for row in present if row.first_attempt_at is not None]
    finished = [row.finished_at for row in final if row.finished_at is not None]
    out: dict[str, Any] = {"transactions": len(ids), "final": len(final)}
    if finished and starts:
        first, last = min(starts), max(finished)
        out["span_s"] = round(last - first, 3)
        out["finished_per_s"] = round(len(final) / max(last - first, 1e-9), 2)
        out["first_attempt_at"] = first
    return out


# --- correctness against the sandboxes' own records ----------------------------------------------


def sandbox_payments() -> dict[str, list[dict[str, Any]]]:
    out = {}
    for code in stack.SANDBOXES:
        status, body = stack.http_get(f"{stack.sandbox_url(code)}/_sandbox/payments", timeout=30)
        if status != 200:
            raise stack.BenchError(f"sandbox {code}: GET /_sandbox/payments answered {status}")
        out[code] = json.loads(body)["payments"]
    return out


def correctness(
    accepted_ids: Sequence[str], rows: dict[str, TxnRow], payments: dict[str, list[dict[str, Any]]], db: BenchDb
) -> dict[str, Any]:
    """lost, sent to two gateways, paid twice; and the database's and the gateways' views compared."""
    accepted = set(accepted_ids)
    by_txn: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for code, listing in payments.items():
        for payment in listing:
            by_txn[payment["transaction_id"]].append((code, payment))
    missing = sorted(accepted - set(rows))
    not_final = sorted(i for i in accepted if i in rows and not rows[i].final)
    two_gateways = sorted(t for t, ps in by_txn.items() if len({code for code, _ in ps}) > 1)
    paid_twice = sorted(
        t for t, ps in by_txn.items() if sum(1 for _, p in ps if p["status"] in ("accepted", "completed")) > 1
    )
    completed_ids = {i for i in accepted if i in rows and rows[i].status == "completed"}
    gateway_completed = {t for t, ps in by_txn.items() if any(p["status"] == "completed" for _, p in ps)}
    flagged = db.execute(
        "SELECT flag_reason, count(*) FROM callbacks_callbackevent WHERE flagged GROUP BY flag_reason"
    ).fetchall()
    unapplied = scalar(db, "SELECT count(*) FROM callbacks_callbackevent WHERE result = 'received'")
    review = scalar(
        db, "SELECT count(*) FROM payments_transaction WHERE needs_review AND id = ANY(%s::uuid[])", [list(accepted)]
    )
    return {
        "accepted": len(accepted),
        "lost": len(missing) + len(not_final),
        "lost_missing_in_db": missing[:20],
        "lost_not_final": not_final[:20],
        "sent_to_two_gateways": len(two_gateways),
        "sent_to_two_gateways_ids": two_gateways[:20],
        "paid_twice": len(paid_twice),
        "paid_twice_ids": paid_twice[:20],
        "gateway_requests_repeated_same_reference": sum(
            1 for ps in by_txn.values() for _, p in ps if int(p.get("requests", 1)) > 1
        ),
        "completed_in_db_but_not_at_gateway": len(completed_ids - gateway_completed),
        "completed_at_gateway_but_not_in_db": len((gateway_completed & accepted) - completed_ids),
        "gateway_payments_for_unknown_transactions": len(set(by_txn) - accepted),
        "gateway_payments_by_sandbox": {code: len(listing) for code, listing in payments.items()},
        "callbacks_flagged": {reason: count for reason, count in flagged},
        "callbacks_unapplied": int(unapplied),
        "transactions_needing_review": int(review),
    }


# --- logs and machine --------------------------------------------------------------------------------

# JSON log records (Paygate), celery's "[... WARNING/MainProcess]", gunicorn's "[pid] [ERROR]",
# granian's "[ERROR] ...", tracebacks.
_LOG_PROBLEM = re.compile(
    r'"level": "(WARNING|ERROR|CRITICAL)"|\b(WARNING|ERROR|CRITICAL)/\w+\]|\] \[(WARNING|ERROR|CRITICAL)\]'
    r"|^\[(WARNING|WARN|ERROR|CRITICAL)\]|^Traceback|Error: |Exception occurred"
)


def scan_logs(log_dir: Path) -> dict[str, Any]:
    """Counts of warnings and errors per process log (LOG_LEVEL=WARNING: everything logged is one)."""
    out: dict[str, Any] = {}
    for path in sorted(log_dir.glob("*.log")):
        lines = path.read_text(errors="replace").splitlines()
        problems = [line for line in lines if _LOG_PROBLEM.search(line)]
        if problems:
            distinct: list[str] = []
            for line in problems:
                short = re.sub(r"^\S+ \S+ ", "", line)[:300]
                if short not in distinct:
                    distinct.append(short)
            out[path.stem] = {"lines": len(problems), "distinct_samples": distinct[:8]}
    return out


_TICKS = os.sysconf("SC_CLK_TCK")

# Kinds of process: what the per-transaction CPU table is made of. The floor's carry this prefix.
FLOOR_PREFIX = "floor "
SHARED_SUFFIX = " (shared)"  # servers that also serve other work on the machine
LOADGEN = "load generator"


@dataclass(frozen=True, slots=True)
class CpuSample:
    """Per-process CPU seconds (utime + stime) of every process now, with the kind of each one."""

    at: float
    machine_busy: float  # jiffies
    machine_total: float
    processes: dict[int, tuple[float, str]]  # pid -> (cpu seconds, kind)


_PG_BACKEND = re.compile(r"\d+\.\d+\.\d+\.\d+\(\d+\)|\[local\]")


def process_kind(name: str) -> str:
    """The kind of a process the stack started, from its name (web, worker1, floor-worker1, sandbox-acmepay, ...)."""
    floor = name.startswith("floor-") or name == f"sandbox-{stack.FLOOR_SANDBOX}"
    base = name.removeprefix("floor-")
    for kind in ("webhooks", "web", "worker", "beat", "sandbox"):
        if base.startswith(kind):
            return f"{FLOOR_PREFIX if floor else ''}{kind}"
    return base


def _kind(pid: int, pgrp: int, ours: dict[int, str]) -> str:
    if pgrp in ours:
        return ours[pgrp]
    if pgrp == os.getpgrp() or pid == os.getpid() or pid in BENCH_BACKENDS:
        return LOADGEN
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "other"
    if cmdline.startswith("postgres: "):
        if f" {stack.DB_NAME} " in cmdline:
            return "postgres"  # the backends serving Paygate's bench database
        if f" {stack.FLOOR_DB_NAME} " in cmdline:
            return f"{FLOOR_PREFIX}postgres"
        if _PG_BACKEND.search(cmdline):
            return "other"  # backends serving other databases
        return f"postgres background{SHARED_SUFFIX}"  # WAL writer, checkpointer, ...: serve everyone
    if cmdline.startswith("/usr/lib/postgresql"):
        return f"postgres background{SHARED_SUFFIX}"
    if "redis-server" in cmdline:
        return f"redis{SHARED_SUFFIX}"
    if "beam.smp" in cmdline or "erl_child_setup" in cmdline or "rabbitmq" in cmdline:
        return f"rabbitmq{SHARED_SUFFIX}"
    return "other"


def owner_of(kind: str) -> str:
    """bench / shared / other, for the per-phase table of who used the machine."""
    if kind == "other":
        return "other"
    return "shared" if kind.endswith(SHARED_SUFFIX) else "bench"


def cpu_sample(ours: Mapping[int, str]) -> CpuSample:
    """`ours`: the stack's process groups, each with its kind (see `process_kind`)."""
    with open("/proc/stat") as handle:
        fields = [float(value) for value in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    processes: dict[int, tuple[float, str]] = {}
    known = dict(ours)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        rest = raw[raw.rindex(")") + 2 :].split()
        pid = int(entry.name)
        # utime + stime, plus cutime + cstime: a child that ends and is reaped moves its CPU to its parent,
        # so that the differences below still count it (see cpu_by_kind).
        ticks = float(rest[11]) + float(rest[12]) + float(rest[13]) + float(rest[14])
        processes[pid] = (ticks / _TICKS, _kind(pid, int(rest[2]), known))
    return CpuSample(
        at=time.monotonic(), machine_busy=sum(fields) - idle, machine_total=sum(fields), processes=processes
    )


# PostgreSQL backends: children of the postmaster, a shared process, not of anything the bench started.
BACKEND_KINDS = frozenset({"postgres", f"{FLOOR_PREFIX}postgres"})
POSTGRES_BACKGROUND = f"postgres background{SHARED_SUFFIX}"


def cpu_by_kind(
    before: CpuSample, after: CpuSample, *, seen: Mapping[int, tuple[float, str]] | None = None
) -> dict[str, float]:
    """CPU seconds by kind of process between two samples.

    Each process counts its reaped children (cutime), so a process of the stack that ended
    meanwhile is taken off at its earlier value and comes back in full in its parent's: the
    difference is its CPU in the window. A PostgreSQL backend that ended (its connection closed
    after DB_CONN_MAX_AGE) comes back in the postmaster's, a shared process, with all it ever
    used: it counts up to `seen`, the last value sampled before it ended (`CpuWindow`), and that
    value is taken off the postmaster's. (A process whose parent ended too is missed.)
    """
    seen = seen or {}
    seconds: dict[str, float] = defaultdict(float)
    for pid, (cpu, kind) in after.processes.items():
        earlier = before.processes.get(pid)
        if earlier is None and kind.endswith(SHARED_SUFFIX):
            continue  # a server someone else started meanwhile (a test's private Redis): not ours to count
        seconds[kind] += cpu - (earlier[0] if earlier is not None else 0.0)
    for pid, (cpu, kind) in before.processes.items():
        if pid in after.processes or kind.endswith(SHARED_SUFFIX):
            continue
        if kind in BACKEND_KINDS:
            last = seen.get(pid, (cpu, kind))[0]
            seconds[kind] += last - cpu
            seconds[POSTGRES_BACKGROUND] -= last
        else:
            seconds[kind] -= cpu
    for pid, (last, kind) in seen.items():
        if kind in BACKEND_KINDS and pid not in before.processes and pid not in after.processes:
            seconds[kind] += last  # connected and gone within the window
            seconds[POSTGRES_BACKGROUND] -= last
    return dict(seconds)


class CpuWindow:
    """CPU by kind of process over a window (`by_kind()`), sampled every `interval` in between so
    that PostgreSQL backends that end during it are counted up to their last sample."""

    def __init__(self, ours: Any, *, interval: float = 0.5) -> None:
        self.ours = ours  # () -> the stack's process groups and their kinds, now
        self.interval = interval
        self.seen: dict[int, tuple[float, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-cpu", daemon=True)

    def _note(self, sample: CpuSample) -> None:
        self.seen.update({pid: value for pid, value in sample.processes.items() if value[1] in BACKEND_KINDS})

    def __enter__(self) -> CpuWindow:
        self.before = cpu_sample(self.ours())
        self._note(self.before)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._note(cpu_sample(self.ours()))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.after = cpu_sample(self.ours())

    def by_kind(self) -> dict[str, float]:
        return cpu_by_kind(self.before, self.after, seen=self.seen)


def cpu_usage(before: CpuSample, after: CpuSample) -> dict[str, float]:
    """Machine busy % and CPU seconds by owner (bench, shared, other) between two samples."""
    seconds: dict[str, float] = defaultdict(float)
    for kind, value in cpu_by_kind(before, after).items():
        seconds[owner_of(kind)] += value
    wall = max(after.at - before.at, 1e-9)
    capacity = wall * (os.cpu_count() or 1)
    total = after.machine_total - before.machine_total
    return {
        "machine_busy_percent": round(100.0 * (after.machine_busy - before.machine_busy) / total, 1) if total else 0.0,
        **{f"{owner}_cpu_s": round(value, 2) for owner, value in sorted(seconds.items())},
        "other_percent_of_machine": round(100.0 * seconds.get("other", 0.0) / capacity, 1),
    }


def cpu_ms_per_transaction(by_kind: Mapping[str, float], transactions: int, *, floor: bool) -> dict[str, Any]:
    """One side's CPU ms per finished transaction by kind, its total, and the shared servers' beside it."""
    if transactions <= 0:
        return {}
    own: dict[str, float] = {}
    shared: dict[str, float] = {}
    for kind, seconds in by_kind.items():
        ms = round(1000.0 * seconds / transactions, 3)
        if kind.endswith(SHARED_SUFFIX):
            shared[kind.removesuffix(SHARED_SUFFIX)] = ms
        elif kind == LOADGEN:
            shared[LOADGEN] = ms
        elif kind.startswith(FLOOR_PREFIX) == floor and kind != "other":
            own[kind.removeprefix(FLOOR_PREFIX)] = ms
    return {
        "transactions": transactions,
        "by_kind_ms": dict(sorted(own.items())),
        "total_ms": round(sum(own.values()), 3),
        "outside_ms": dict(sorted(shared.items())),
    }


def wait_quiet(*, timeout: float, threshold_percent: float = 15.0, window: float = 2.0) -> dict[str, Any]:
    """Wait (up to `timeout`) for a `window` in which other work uses under `threshold_percent` of the machine."""
    started = time.monotonic()
    last: dict[str, float] = {}
    while True:
        before = cpu_sample({})
        time.sleep(window)  # a measurement window, not a synchronisation
        last = cpu_usage(before, cpu_sample({}))
        quiet = last["other_percent_of_machine"] < threshold_percent
        if quiet or time.monotonic() - started >= timeout:
            return {"quiet": quiet, "waited_s": round(time.monotonic() - started, 1), "last_window": last}


def machine_snapshot() -> dict[str, Any]:
    """Load and the busiest processes at this moment, to flag a machine shared with other work."""
    with open("/proc/loadavg") as handle:
        load1, load5, load15 = handle.read().split()[:3]
    top = subprocess.run(
        ["ps", "-eo", "pid,pcpu,etime,comm", "--sort=-pcpu"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[1:6]  # command names only: full command lines carry local paths
    return {
        "loadavg": [float(load1), float(load5), float(load15)],
        "cpus": os.cpu_count(),
        "busiest_processes": [line.strip()[:160] for line in top],
    }
