"""A webhook receiver over real HTTP, for tests, the benchmark and the fault-injection run.

It records every request (path, headers, body) and answers each path by a script: a list
of status codes used in turn (the last one repeats), or "hang" to hold the request until
released, or "dribble" to trickle an answer that never ends. It counts the requests open at
once per path (`max_open`), and when each dribbled one was hung up on (`hung_up`).
It runs in a thread of the calling process, on 127.0.0.1 and a free port.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = "hang"
# Answers one byte every `Receiver.dribble_seconds`, never finishing, until the sender hangs up.
DRIBBLE = "dribble"


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    # What the script answered it (HANG: held, then 200 once released).
    answer: int | str = 200
    # When it arrived (unix time).
    at: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)

    def signature_valid(self, secret: str) -> bool:
        """The `Paygate-Signature` header checks out against `secret` (t=…,v1=HMAC-SHA256 of "t.body")."""
        parts = dict(item.split("=", 1) for item in self.headers.get("Paygate-Signature", "").split(",") if "=" in item)
        if "t" not in parts or "v1" not in parts:
            return False
        expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, parts["v1"])


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A sender that went away mid-request (killed, timed out) is its business, not an error here."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class Receiver:
    host: str = "127.0.0.1"
    scripts: dict[str, list[int | str]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _release: threading.Event = field(default_factory=threading.Event)
    _calls: dict[str, int] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    dribble_seconds: float = 1.0
    # What a path without a script answers.
    default_answer: int | str = 200
    _open: dict[str, int] = field(default_factory=dict)
    _max_open: dict[str, int] = field(default_factory=dict)
    # (path, when the dribble started, when the sender hung up) of each dribbled request.
    hung_up: list[tuple[str, float, float]] = field(default_factory=list)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The answer's head and body leave in two writes: with Nagle's algorithm on, the body
            # waits for the sender's delayed ACK of the head (40 ms on Linux), a stall no real
            # endpoint has, which would cap a sender at 25 answers per second per connection.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                answer = receiver._record(Received(self.path, dict(self.headers.items()), body, at=time.time()))
                try:
                    self._answer(answer)
                finally:
                    receiver._closed(self.path)

            do_GET = do_POST  # noqa: N815 (the same, for a gateway's health check)

            def _answer(self, answer: int | str) -> None:
                if answer == DRIBBLE:
                    started = time.time()
                    data = b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"x" * 100_000
                    try:
                        for index in range(len(data)):
                            self.wfile.write(data[index : index + 1])
                            self.wfile.flush()
                            # The request was read whole: the socket turning readable means the sender hung up.
                            readable, _, _ = select.select([self.connection], [], [], receiver.dribble_seconds)
                            if readable and not self.connection.recv(1, socket.MSG_PEEK):
                                raise ConnectionResetError("hung up")
                    except OSError:
                        with receiver._lock:
                            receiver.hung_up.append((self.path, started, time.time()))
                    self.close_connection = True
                    return
                if answer == HANG:
                    receiver._release.wait(120)
                    answer = 200
                payload = b'{"ok":true}'
                try:
                    self.send_response(int(answer))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the sender gave up first

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _QuietServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True).start()
        return self

    def _record(self, item: Received) -> int | str:
        with self._lock:
            calls = self._calls.get(item.path, 0)
            self._calls[item.path] = calls + 1
            self._open[item.path] = self._open.get(item.path, 0) + 1
            self._max_open[item.path] = max(self._max_open.get(item.path, 0), self._open[item.path])
            script = self.scripts.get(item.path) or [self.default_answer]
            answer = script[min(calls, len(script) - 1)]
            self.received.append(replace(item, answer=answer))
            return answer

    def _closed(self, path: str) -> None:
        with self._lock:
            self._open[path] -= 1

    def max_open(self, path: str) -> int:
        """The most requests to `path` that were open at the same time."""
        with self._lock:
            return self._max_open.get(path, 0)

    def url(self, path: str = "/hook") -> str:
        assert self._server is not None, "not started"
        return f"http://{self.host}:{self._server.server_address[1]}{path}"

    def on(self, path: str, *answers: int | str) -> str:
        """Script `path`'s answers and return its URL."""
        with self._lock:
            self.scripts[path] = list(answers)
        return self.url(path)

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [item for item in self.received if item.path == path]

    def matching(self, predicate: Callable[[Received], bool]) -> list[Received]:
        with self._lock:
            return [item for item in self.received if predicate(item)]

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
