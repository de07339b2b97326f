"""How fast traffic leaves a gateway that goes down, and comes back when it recovers.

Against a running Paygate (e.g. `make run`), sends a steady stream of DE deposits
(acmepay first, soapbank second), switches the acmepay sandbox to `down`, later back to
`ok`, and reads from each transaction's attempts when acmepay was still tried and when it
got traffic again.

    .venv/bin/python bench/failover.py --key <API key> [--rate 5] [--down-for 40] [--after 60]
"""

from __future__ import annotations

import argparse
import threading
import time
from datetime import datetime
from concurrent.futures import ThreadPoolExecutor

import requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--key", required=True)
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--sandbox", default="http://127.0.0.1:8101", help="the acmepay sandbox")
    parser.add_argument("--rate", type=float, default=5.0, help="deposits per second")
    parser.add_argument("--before", type=float, default=10.0, help="seconds of traffic before the outage")
    parser.add_argument("--down-for", type=float, default=40.0)
    parser.add_argument("--after", type=float, default=60.0, help="seconds of traffic after recovery")
    args = parser.parse_args()
    headers = {"Authorization": f"Api-Key {args.key}"}
    sent: list[tuple[float, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def send_one(n: int) -> None:
        body = {"customer_id": f"cus_fo_{n}", "country": "DE", "amount": "5.00", "currency": "EUR"}
        at = time.monotonic()
        response = requests.post(f"{args.base}/api/v1/deposits", json=body, headers=headers, timeout=30)
        if response.status_code == 202:
            with lock:
                sent.append((at, response.json()["id"]))

    def load() -> None:
        with ThreadPoolExecutor(max_workers=8) as pool:
            n = 0
            next_at = time.monotonic()
            while not stop.is_set():
                pool.submit(send_one, n)
                n += 1
                next_at += 1 / args.rate
                stop.wait(max(next_at - time.monotonic(), 0))

    requests.post(f"{args.sandbox}/_sandbox/mode", json={"mode": "ok"}, timeout=5).raise_for_status()
    loader = threading.Thread(target=load)
    loader.start()
    stop.wait(args.before)
    down_at = time.time()
    requests.post(f"{args.sandbox}/_sandbox/mode", json={"mode": "down"}, timeout=5).raise_for_status()
    stop.wait(args.down_for)
    up_at = time.time()
    requests.post(f"{args.sandbox}/_sandbox/mode", json={"mode": "ok"}, timeout=5).raise_for_status()
    stop.wait(args.after)
    stop.set()
    loader.join()

    # Let the last ones finish, then read when each attempt reached acmepay (server time).
    time.sleep(5)  # settle time of this measurement script, not a test's synchronisation
    tried_while_down: list[float] = []
    back: list[float] = []
    for _, txn_id in sorted(sent):
        body = requests.get(f"{args.base}/api/v1/transactions/{txn_id}", headers=headers, timeout=10).json()
        for attempt in body["attempts"]:
            if attempt["gateway"] != "acmepay":
                continue
            at = datetime.fromisoformat(attempt["created_at"].replace("Z", "+00:00")).timestamp()
            if down_at <= at < up_at:
                tried_while_down.append(at - down_at)
            elif at >= up_at and attempt["outcome"] == "accepted":
                back.append(at - up_at)
    print(f"deposits sent: {len(sent)} at {args.rate}/s; acmepay down for {args.down_for:.0f} s")
    if tried_while_down:
        print(
            f"traffic stopped reaching acmepay {max(tried_while_down):.1f} s after it went down "
            f"({len(tried_while_down)} attempts reached it and failed over)"
        )
    else:
        print("no deposit tried acmepay while it was down")
    print(
        f"acmepay got traffic again {min(back):.1f} s after it recovered"
        if back
        else f"acmepay got no traffic within {args.after:.0f} s of recovering"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
