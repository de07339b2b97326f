"""The load generator: a fixed number of in-flight requests on one asyncio loop (aiohttp).

`bench/run.py` drives its stack with it; alone, it drives a running Paygate (e.g. `make run`):

    .venv/bin/python -m bench.load --key <API key> [--n 200] [--concurrency 8] [--base http://127.0.0.1:8000]

Why not locust: on a 2-core machine shared with the whole stack, the generator's own CPU is
taken from the system under test. Locust's headless runner adds gevent, its stats pipeline
and per-request event hooks; an aiohttp client with pre-encoded bodies spends a few tens of
microseconds per request and keeps exactly `concurrency` requests in flight (a closed loop),
which is the "same concurrency" the floor comparison needs. Connections are pooled with
HTTP keep-alive; Paygate and the floor always run the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

import aiohttp

# The four demo countries (CONTRACT §5) and a payment-details shape typical of each.
COUNTRIES: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("DE", "EUR", {"iban": "DE89370400440532013000", "holder_name": "Jane Roe"}),
    ("GB", "GBP", {"iban": "GB29NWBK60161331926819", "holder_name": "John Smith"}),
    ("US", "USD", {"account_number": "000123456789", "routing_number": "110000000", "holder_name": "Ann Lee"}),
    ("BR", "BRL", {"pix_key": "ana@example.com", "holder_name": "Ana Souza"}),
)
TYPES = ("deposit", "withdrawal")
CUSTOMERS = 500


@dataclass(frozen=True, slots=True)
class RequestSpec:
    index: int
    type: str
    country: str
    body: bytes
    idempotency_key: str


@dataclass(slots=True)
class RequestRecord:
    index: int
    type: str
    country: str
    started_at: float  # wall clock (time.time), comparable with the database's timestamps
    latency_s: float
    status: int  # HTTP status; 0 when no answer
    transaction_id: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class LoadResult:
    records: list[RequestRecord]
    started_at: float
    ended_at: float

    @property
    def accepted(self) -> list[RequestRecord]:
        return [record for record in self.records if record.status == 202 and record.transaction_id]

    @property
    def duration_s(self) -> float:
        return max(self.ended_at - self.started_at, 1e-9)


def combine(results: Sequence[LoadResult]) -> LoadResult:
    """Rounds of one side of an interleaved comparison as one result: records together, and a duration
    that is the sum of the rounds' (the time between rounds belonged to the other side)."""
    if not results:
        raise ValueError("nothing to combine")
    records = sorted((record for result in results for record in result.records), key=lambda r: r.index)
    started_at = results[0].started_at
    return LoadResult(
        records=records, started_at=started_at, ended_at=started_at + sum(result.duration_s for result in results)
    )


def interleave(
    sides: dict[str, Callable[[Sequence[RequestSpec]], LoadResult]],
    specs: dict[str, Sequence[RequestSpec]],
    *,
    rounds: int,
) -> dict[str, LoadResult]:
    """Run each side's specs in `rounds` chunks, alternating which side goes first (A B, B A, A B, ...), so
    that whatever else disturbs the machine falls on both sides alike."""
    done: dict[str, list[LoadResult]] = {name: [] for name in sides}
    names = list(sides)
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            chunk = len(specs[name]) // rounds
            end = len(specs[name]) if index == rounds - 1 else (index + 1) * chunk
            part = specs[name][index * chunk : end]
            if part:
                done[name].append(sides[name](part))
    return {name: combine(results) for name, results in done.items() if results}


def make_specs(count: int, *, run_tag: str, start: int = 0) -> list[RequestSpec]:
    """Deposits and withdrawals alternating, across the four countries, 500 recurring customers."""
    specs = []
    for index in range(start, start + count):
        country, currency, details = COUNTRIES[index % len(COUNTRIES)]
        kind = TYPES[(index // len(COUNTRIES)) % len(TYPES)]
        amount = Decimal(1000 + (index * 7919) % 90000) / 100
        body = {
            "customer_id": f"cus_{index % CUSTOMERS}",
            "country": country,
            "amount": f"{amount:.2f}",
            "currency": currency,
            "payment_details": details,
            "metadata": {"order": f"{run_tag}-{index}"},
        }
        specs.append(
            RequestSpec(
                index=index,
                type=kind,
                country=country,
                body=json.dumps(body, separators=(",", ":")).encode(),
                idempotency_key=f"{run_tag}-{index}",
            )
        )
    return specs


def path_for(kind: str, *, floor: bool) -> str:
    plural = "deposits" if kind == "deposit" else "withdrawals"
    return f"/bench/floor/{plural}" if floor else f"/api/v1/{plural}"


async def _one(
    session: aiohttp.ClientSession, base_url: str, spec: RequestSpec, *, floor: bool, headers: dict[str, str]
) -> RequestRecord:
    url = base_url + path_for(spec.type, floor=floor)
    request_headers = {**headers, "Idempotency-Key": spec.idempotency_key}
    started_at = time.time()
    started = time.perf_counter()
    status, txn_id, error = 0, None, None
    try:
        async with session.post(url, data=spec.body, headers=request_headers, allow_redirects=False) as response:
            payload = await response.read()
            status = response.status
        if status == 202:
            txn_id = json.loads(payload)["id"]
        else:
            error = payload[:200].decode(errors="replace")
    except (TimeoutError, aiohttp.ClientError, ValueError, KeyError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:200]
    return RequestRecord(
        index=spec.index,
        type=spec.type,
        country=spec.country,
        started_at=started_at,
        latency_s=time.perf_counter() - started,
        status=status,
        transaction_id=txn_id,
        error=error,
    )


async def _drive(
    base_url: str,
    specs: Sequence[RequestSpec],
    *,
    concurrency: int,
    floor: bool,
    api_key: str | None,
    timeout_s: float,
    after_each: Callable[[RequestRecord], None] | None,
) -> LoadResult:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Api-Key {api_key}"
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency, keepalive_timeout=30)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    records: list[RequestRecord] = []
    queue: Iterator[RequestSpec] = iter(specs)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as session:

        async def client() -> None:
            for spec in queue:  # one shared iterator: each in-flight slot takes the next request
                record = await _one(session, base_url, spec, floor=floor, headers=headers)
                records.append(record)
                if after_each is not None:
                    after_each(record)  # blocking on purpose: the closed loop waits for it

        started_at = time.time()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        ended_at = time.time()
    records.sort(key=lambda record: record.index)
    return LoadResult(records=records, started_at=started_at, ended_at=ended_at)


def drive(
    base_url: str,
    specs: Sequence[RequestSpec],
    *,
    concurrency: int,
    floor: bool = False,
    api_key: str | None = None,
    timeout_s: float = 60.0,
    after_each: Callable[[RequestRecord], None] | None = None,
) -> LoadResult:
    """Send every spec with `concurrency` requests in flight; one record per request.

    `after_each` runs after each answer, before that slot sends its next request: with
    concurrency 1 it makes a closed loop that waits, e.g., for the transaction to be final.
    """
    return asyncio.run(
        _drive(
            base_url,
            specs,
            concurrency=concurrency,
            floor=floor,
            api_key=api_key,
            timeout_s=timeout_s,
            after_each=after_each,
        )
    )


def main(argv: list[str] | None = None) -> int:
    """N creates against a running Paygate; accepted/s, API latency, and the time until all were final."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--key", required=True, help="an API key (make run prints one)")
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds to wait for every transaction")
    args = parser.parse_args(argv)
    result = drive(
        args.base, make_specs(args.n, run_tag=f"load-{time.time_ns()}"), concurrency=args.concurrency, api_key=args.key
    )
    latencies = [record.latency_s * 1000 for record in result.accepted]
    print(f"requests: {args.n} at concurrency {args.concurrency}; accepted: {len(latencies)}")
    print(f"accepted per second: {len(latencies) / result.duration_s:.1f}")
    if len(latencies) > 1:
        cuts = statistics.quantiles(latencies, n=100, method="inclusive")
        print(f"API latency p50 / p95 / p99 ms: {cuts[49]:.1f} / {cuts[94]:.1f} / {cuts[98]:.1f}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    pending = {record.transaction_id for record in result.accepted}
    deadline = time.monotonic() + args.deadline
    while pending and time.monotonic() < deadline:
        for txn_id in list(pending):
            request = urllib.request.Request(
                f"{args.base}/api/v1/transactions/{txn_id}", headers={"Authorization": f"Api-Key {args.key}"}
            )
            with opener.open(request, timeout=10) as response:
                if json.loads(response.read())["status"] in ("completed", "failed"):
                    pending.discard(txn_id)
        if pending:
            time.sleep(0.2)  # this client's polling pace
    waited = time.time() - result.started_at
    print(f"all final {waited:.1f} s after the first request" if not pending else f"NOT final: {len(pending)}")
    return 0 if not pending and len(latencies) == args.n else 1


if __name__ == "__main__":
    sys.exit(main())
