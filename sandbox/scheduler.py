"""Background work for callbacks: a time-ordered queue run by a few daemon threads, and the
signed HTTP POST that delivers one callback.

Neither part knows what a callback means: `Scheduler` runs functions after a delay,
`CallbackSender` signs and posts a body. The gateway decides what to send, when, and what
an outcome changes.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

import requests

from .signing import sign_callback

logger = logging.getLogger(__name__)

CALLBACK_TIMEOUT_SECONDS = 5.0
# Waits before the 2nd..5th delivery try; after the 5th failure the callback is dropped.
CALLBACK_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)
# Several delivery threads, so one unreachable callback URL (5 s timeouts) does not hold up the rest.
CALLBACK_WORKERS = 4


def retry_delay(attempt: int) -> float | None:
    """The wait before the try after try number `attempt` failed; None once the last one has."""
    return CALLBACK_RETRY_DELAYS[attempt - 1] if attempt <= len(CALLBACK_RETRY_DELAYS) else None


class Scheduler:
    """Runs functions after a delay on a few daemon threads sharing one time-ordered queue."""

    def __init__(self, workers: int, name: str) -> None:
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()  # ties in due time keep insertion order
        self._cond = threading.Condition()
        self._stopped = False
        self._running = 0
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cond:
            if self._stopped:
                return
            heapq.heappush(self._queue, (time.monotonic() + max(delay, 0.0), next(self._seq), fn))
            self._cond.notify_all()  # `wait_idle` waits on the same condition

    def clear(self) -> None:
        with self._cond:
            self._queue.clear()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no function is running; False if some still were at the deadline."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._running:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def stop(self, timeout: float = 2.0) -> None:
        """Drop what is queued and wait (briefly) for running functions to finish."""
        with self._cond:
            self._stopped = True
            self._queue.clear()
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._queue or self._queue[0][0] > time.monotonic()):
                    wait = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._cond.wait(wait)
                if self._stopped:
                    return
                _, _, fn = heapq.heappop(self._queue)
                self._running += 1
            try:
                fn()
            except Exception:
                logger.exception("sandbox background task failed")
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()


class CallbackSender:
    """Posts signed callbacks; each delivery thread keeps its own HTTP session."""

    def __init__(self, webhook_secret: str) -> None:
        self._secret = webhook_secret
        # One session per thread, so callbacks reuse their connections as a real gateway's
        # would (requests.Session is not meant to be shared between threads).
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def post(self, url: str, body: bytes, content_type: str) -> tuple[bool, str]:
        """(delivered: a 2xx answer, what happened: "HTTP <status>" or the exception's name)."""
        headers = {
            "Content-Type": content_type,
            "X-Signature": sign_callback(secret=self._secret, body=body, timestamp=int(time.time())),
        }
        try:
            response = self._session().post(
                url, data=body, headers=headers, timeout=CALLBACK_TIMEOUT_SECONDS, allow_redirects=False
            )
        except requests.RequestException as exc:
            return False, type(exc).__name__
        return 200 <= response.status_code < 300, f"HTTP {response.status_code}"
