"""Drive a running Paygate (e.g. `make run`) with mixed deposits and withdrawals and time them.

    .venv/bin/python bench/drive.py --key <API key> [--n 200] [--concurrency 8] [--base http://127.0.0.1:8000]

Reports requests accepted per second, the time until every transaction was final, and any
that were not final by the deadline. Only talks to the given base URL (loopback by default).
"""

from __future__ import annotations

import argparse
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests

COUNTRIES = [("DE", "EUR"), ("GB", "GBP"), ("US", "USD"), ("BR", "BRL")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--key", required=True, help="API key (make run prints one)")
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds to wait for every transaction")
    args = parser.parse_args()

    local = threading.local()
    headers = {"Authorization": f"Api-Key {args.key}"}

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session

    def create(n: int) -> tuple[int, str | None]:
        country, currency = COUNTRIES[n % len(COUNTRIES)]
        kind = "deposits" if n % 2 == 0 else "withdrawals"
        body = {
            "customer_id": f"cus_{n % 50}",
            "country": country,
            "currency": currency,
            "amount": f"{n % 90 + 10}.00",
            "payment_details": {"iban": "DE89370400440532013000", "holder_name": "Jane Roe"},
        }
        response = session().post(
            f"{args.base}/api/v1/{kind}",
            json=body,
            timeout=30,
            headers={**headers, "Idempotency-Key": f"drive-{time.time_ns()}-{n}"},
        )
        return response.status_code, response.json().get("id") if response.status_code == 202 else None

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        results = list(pool.map(create, range(args.n)))
    accept_seconds = time.perf_counter() - started
    ids = [txn_id for _, txn_id in results if txn_id]
    statuses = Counter(code for code, _ in results)

    pending = set(ids)
    final: Counter[str] = Counter()
    deadline = time.monotonic() + args.deadline
    while pending and time.monotonic() < deadline:
        for txn_id in list(pending):
            body = requests.get(f"{args.base}/api/v1/transactions/{txn_id}", headers=headers, timeout=10).json()
            if body["status"] in ("completed", "failed"):
                final[body["status"] if body["status"] == "completed" else f"failed:{body['failure_reason']}"] += 1
                pending.discard(txn_id)
        if pending:
            time.sleep(0.2)  # polling interval of this client, not synchronisation in a test
    all_final_seconds = time.perf_counter() - started

    print(f"requests: {args.n} at concurrency {args.concurrency}; answers: {dict(statuses)}")
    print(f"accepted per second: {len(ids) / accept_seconds:.1f} ({len(ids)} in {accept_seconds:.2f} s)")
    print(
        f"time until all were final: {all_final_seconds:.2f} s from the first request"
        if not pending
        else f"NOT final after {args.deadline:.0f} s: {len(pending)} ({sorted(pending)[:5]}...)"
    )
    print(f"final: {dict(final)}")
    return 0 if not pending and len(ids) == args.n else 1


if __name__ == "__main__":
    raise SystemExit(main())
