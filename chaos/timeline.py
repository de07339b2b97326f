"""The chaos run's event log: every fault and notable event, offset from the start of the load."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# --- the event log ---------------------------------------------------------------------------------


class Timeline:
    """Every fault and notable event, with its offset from the start of the load: a JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.t0 = time.monotonic()
        self.events: list[dict[str, Any]] = []
        self.faults: Counter[str] = Counter()
        self._lock = threading.Lock()

    def reset_clock(self) -> None:
        self.t0 = time.monotonic()

    def offset(self) -> float:
        return round(time.monotonic() - self.t0, 2)

    def record(self, kind: str, *, fault: bool = False, quiet: bool = False, **details: Any) -> None:
        entry = {"t": self.offset(), "at": now_iso(), "kind": kind, **details}
        with self._lock:
            self.events.append(entry)
            if fault:
                self.faults[kind] += 1
            with open(self.path, "a") as handle:
                handle.write(json.dumps(entry, default=str) + "\n")
        if not quiet:
            extra = " ".join(f"{k}={v}" for k, v in details.items())
            print(f"  [{entry['t']:7.1f}s] {kind} {extra}".rstrip(), flush=True)
