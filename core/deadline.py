"""A wall-clock deadline for a whole outbound exchange, that closes its sockets when it passes.

Per-read timeouts do not bound an exchange: a peer that sends one byte just before each read
timeout holds the caller for ever. Inside `deadline(seconds)`, every socket the exchange opens
or reuses is registered (core.netguard's connections call `watch`); one watchdog thread per
process shuts those sockets down when the deadline passes, so the blocked read returns at once
and the caller sees a failed exchange. Once the block has been left nothing of it is touched
again: a pooled connection handed to the next caller is never shut by a late watchdog.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Deadline:
    """One exchange's deadline and the sockets it must shut when it passes."""

    __slots__ = ("at", "expired", "_done", "_lock", "_sockets")

    def __init__(self, at: float) -> None:
        self.at = at  # time.monotonic()
        self.expired = False
        self._done = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []

    def watch(self, sock: Any) -> None:
        """Shut `sock` (or a connection's `.sock`) down when the deadline passes: a duplicate of
        its descriptor is kept, so a TLS socket is shut at the transport under its TLS layer."""
        sock = getattr(sock, "sock", sock)
        if sock is None:
            return
        try:
            copy = socket.fromfd(sock.fileno(), sock.family, sock.type)
        except (OSError, ValueError, AttributeError):
            return
        with self._lock:
            if self._done:
                copy.close()
                return
            self._sockets.append(copy)
            if self.expired:
                _shut(copy)

    def expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def finish(self) -> None:
        with self._lock:
            self._done = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()

    def remaining(self) -> float:
        return self.at - time.monotonic()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by its owner
        sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """One thread per process that expires deadlines in time order."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._pid = 0

    def add(self, item: Deadline) -> None:
        with self._cond:
            if self._pid != os.getpid():  # first use, or a forked child: the thread did not survive
                self._pid = os.getpid()
                self._heap = []
                threading.Thread(target=self._run, name="deadline-watchdog", daemon=True).start()
            first = not self._heap or item.at < self._heap[0][0]
            heapq.heappush(self._heap, (item.at, next(self._seq), item))
            if first:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            due: list[Deadline] = []
            with self._cond:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
                if not due:
                    self._cond.wait(timeout=(self._heap[0][0] - now) if self._heap else None)
                    continue
            for item in due:
                item.expire()


_watchdog = _Watchdog()
_current = threading.local()


@contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """Bound everything inside to `seconds` of wall-clock time (see the module's docstring)."""
    item = Deadline(time.monotonic() + seconds)
    previous = getattr(_current, "value", None)
    _current.value = item
    _watchdog.add(item)
    try:
        yield item
    finally:
        item.finish()
        _current.value = previous


def watch(sock: Any) -> None:
    """Register a socket (or connection) with the deadline of the exchange running in this thread."""
    item: Deadline | None = getattr(_current, "value", None)
    if item is not None:
        item.watch(sock)
