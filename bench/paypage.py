"""The `paypage` phase: the customer's side of a deposit with an action (CONTRACT §11).

1. The sandbox `globex` (the first route of US) is switched to `action: redirect` with
   `callback: none`, so that only Paygate's look-up on the customer's return can tell it the
   outcome; N US deposits with `return_url` are created and waited for until `requires_action`.
2. One customer at a time: the pay page (`303` to the challenge), Approve at the sandbox (`303` to
   Paygate's return endpoint), then the return endpoint itself, timed from the request to its
   `303` to the merchant's `return_url` — the gateway look-up and the status change included.
   A return that does not answer `303` to the merchant counts as such (and is not in the figures).
3. Requests per second of the pay page at a fixed number in flight (aiohttp, keep-alive, no
   redirects followed): a final transaction (`303` to the merchant), one waiting for the customer
   (`requires_action`: `303` to the gateway) and one not yet routed (the payment workers stopped:
   the waiting page, `200` HTML).
4. The waiting one's customer cancels (every deposit of the phase ends final, for the correctness
   check); the sandbox's mode is put back (`action: none`, `callback: completed`).

The pay page's per-address limit stays on, at a limit the bench never reaches (its check still runs).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import aiohttp
import requests

from bench import measure, stack

ACTION_SANDBOX = "globex"
MERCHANT_RETURN_URL = "https://shop.example/bench/return"
US = {"account_number": "000123456789", "routing_number": "110000000", "holder_name": "Ann Lee"}
DE = {"iban": "DE89370400440532013000", "holder_name": "Jane Roe"}


def _deposit(
    session: requests.Session, web_url: str, api_key: str, *, key: str, country: str, index: int
) -> dict[str, Any]:
    currency, details = ("USD", US) if country == "US" else ("EUR", DE)
    body = {
        "customer_id": f"cus_pay_{index % 50}",
        "country": country,
        "currency": currency,
        "amount": "12.34",
        "payment_details": details,
        "return_url": f"{MERCHANT_RETURN_URL}?order={index}",
    }
    response = session.post(
        f"{web_url}/api/v1/deposits",
        json=body,
        headers={"Authorization": f"Api-Key {api_key}", "Idempotency-Key": key},
        timeout=30,
    )
    if response.status_code != 202:
        raise stack.BenchError(f"paypage: a deposit answered {response.status_code}: {response.text[:300]}")
    answer = response.json()
    url = (answer.get("next_action") or {}).get("url")
    if not url:
        raise stack.BenchError("paypage: a deposit with return_url answered without next_action.url")
    return {"id": answer["id"], "url": url}


def _wait_status(db: measure.BenchDb, ids: list[str], status: str, *, timeout: float, alive: Callable[[], None]) -> int:
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        alive()
        count = measure.scalar(
            db, "SELECT count(*) FROM payments_transaction WHERE id::text = ANY(%s) AND status = %s", (ids, status)
        )
        if count == len(ids):
            break
        time.sleep(0.2)
    return count


def _return_once(session: requests.Session, item: dict[str, Any]) -> dict[str, Any]:
    """Pay page → challenge → Approve, then the timed return; what happened."""
    page = session.get(item["url"], allow_redirects=False, timeout=30)
    challenge = urljoin(item["url"], page.headers.get("Location", ""))
    if page.status_code != 303 or "/challenge/" not in challenge:
        return {"outcome": f"pay page answered {page.status_code}"}
    approved = session.post(f"{challenge}/decide", data={"choice": "approve"}, allow_redirects=False, timeout=30)
    back = urljoin(challenge, approved.headers.get("Location", ""))
    if approved.status_code != 303 or "/return?" not in back:
        return {"outcome": f"approve answered {approved.status_code}"}
    started = time.perf_counter()
    returned = session.get(back, allow_redirects=False, timeout=30)
    elapsed_ms = (time.perf_counter() - started) * 1000
    target = returned.headers.get("Location", "")
    ids = parse_qs(urlsplit(target).query).get("transaction_id") or []
    if returned.status_code == 303 and target.startswith(MERCHANT_RETURN_URL) and ids == [item["id"]]:
        return {"outcome": "303 to the merchant", "ms": elapsed_ms}
    return {"outcome": f"return answered {returned.status_code}", "ms_other": elapsed_ms}


def _cancel(session: requests.Session, item: dict[str, Any]) -> bool:
    """The customer presses Cancel and comes back: True once the pay page forwards to the merchant."""
    page = session.get(item["url"], allow_redirects=False, timeout=30)
    challenge = urljoin(item["url"], page.headers.get("Location", ""))
    cancelled = session.post(f"{challenge}/decide", data={"choice": "cancel"}, allow_redirects=False, timeout=30)
    back = urljoin(challenge, cancelled.headers.get("Location", ""))
    returned = session.get(back, allow_redirects=False, timeout=30)
    return returned.status_code == 303 and returned.headers.get("Location", "").startswith(MERCHANT_RETURN_URL)


async def _hammer(url: str, *, requests_n: int, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    remaining = iter(range(requests_n))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def client() -> None:
            for _ in remaining:
                started = time.perf_counter()
                try:
                    async with session.get(url, allow_redirects=False) as response:
                        await response.read()
                        statuses[str(response.status)] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    statuses[type(exc).__name__] += 1
                    continue
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {
        "requests": requests_n,
        "concurrency": concurrency,
        "statuses": dict(statuses),
        "requests_per_s": round(len(latencies) / max(wall, 1e-9), 1),
        "latency_ms": measure.summary(latencies),
    }


def rps(url: str, *, requests_n: int, concurrency: int, expect: int) -> dict[str, Any]:
    """Requests per second of one pay page URL; a warm-up of a few requests first."""
    asyncio.run(_hammer(url, requests_n=min(20, requests_n), concurrency=min(4, concurrency)))
    result = asyncio.run(_hammer(url, requests_n=requests_n, concurrency=concurrency))
    result["expected_status"] = expect
    return result


def run(
    web_url: str,
    api_key: str,
    db: measure.BenchDb,
    *,
    n: int,
    rps_requests: int,
    concurrency: int,
    tag: str,
    stop_workers: Callable[[], None],
    start_workers: Callable[[], None],
    alive: Callable[[], None],
    timeout: float = 120.0,
) -> tuple[dict[str, Any], list[str]]:
    """The phase's figures; the ids of the deposits that must end final (for the correctness check)."""
    mode_url = f"{stack.sandbox_url(ACTION_SANDBOX)}/_sandbox/mode"
    stack.http_post_json(mode_url, {"action": "redirect", "callback": "none"})
    session = requests.Session()
    session.trust_env = False
    out: dict[str, Any] = {"n": n, "sandbox": ACTION_SANDBOX}
    try:
        items = [
            _deposit(session, web_url, api_key, key=f"{tag}-paypage-{i}", country="US", index=i) for i in range(n + 1)
        ]
        ids = [item["id"] for item in items]
        reached = _wait_status(db, ids, "requires_action", timeout=timeout, alive=alive)
        if reached != len(ids):
            raise stack.BenchError(f"paypage: {reached} of {len(ids)} deposits reached requires_action in {timeout}s")
        # The last one stays waiting for its customer: the pay page's `requires_action` figure.
        waiting, returning = items[-1], items[:-1]
        journeys = [_return_once(session, item) for item in returning]
        outcomes = Counter(j["outcome"] for j in journeys)
        out["return_to_merchant_ms"] = measure.summary([j["ms"] for j in journeys if "ms" in j])
        out["return_outcomes"] = dict(outcomes)
        final = returning[0]
        out["rps_final"] = rps(final["url"], requests_n=rps_requests, concurrency=concurrency, expect=303)
        out["rps_requires_action"] = rps(waiting["url"], requests_n=rps_requests, concurrency=concurrency, expect=303)
        # Not routed yet: nothing consumes the payment queue while this one is asked for.
        stop_workers()
        try:
            pending = _deposit(session, web_url, api_key, key=f"{tag}-paypage-pending", country="DE", index=n + 1)
            out["rps_not_routed"] = rps(pending["url"], requests_n=rps_requests, concurrency=concurrency, expect=200)
        finally:
            start_workers()
        # The waiting one's customer cancels at last, so that every deposit of the phase ends final.
        out["waiting_one_cancelled"] = _cancel(session, waiting)
        return out, [*ids, pending["id"]]
    finally:
        stack.http_post_json(mode_url, {"action": "none", "callback": "completed"})
