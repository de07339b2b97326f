"""A child process in its own process group, logging to a file; polling with a deadline; loopback HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


class HarnessError(RuntimeError):
    """A process died while it was waited for, a deadline passed, or a one-shot command failed."""


def wait_for(
    predicate: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    alive: Callable[[], None] | None = None,
) -> T:
    """Poll `predicate` until it returns a truthy value and return it; `HarnessError` at the deadline.

    `alive` runs on every round and raises if something the wait depends on died, so that a
    crashed process fails the wait at once rather than at its deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# Loopback only: a proxy configured in the environment must never see these requests.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, *, timeout: float = 2.0, headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    """A GET; (0, b"") when nothing answers."""
    try:
        with _OPENER.open(urllib.request.Request(url, headers=dict(headers or {})), timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def http_post_json(url: str, payload: Mapping[str, Any] | None = None, *, timeout: float = 5.0) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(payload or {}).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with _OPENER.open(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


class Process:
    """A long-running child in its own session (process group), appending its output to `log_path`.

    It can be started again after it stopped or was killed (same argv, same log).
    """

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0
        # Set before the process is stopped or killed on purpose, so a watcher does not count it.
        self.expected_exit = False

    def start(self) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== starting {self.name} at {time.strftime('%H:%M:%S')} =====\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        self.expected_exit = False
        return self

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise HarnessError(f"{self.name} was never started")
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def check_alive(self) -> None:
        """Raise if the process exited without being stopped on purpose; for `wait_for(alive=...)`."""
        if self.popen is not None and self.popen.poll() is not None and not self.expected_exit:
            raise HarnessError(f"{self.name} exited with {self.popen.returncode}; log tail:\n{self.log_tail()}")

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def signal_group(self, sig: int) -> None:
        """The whole group: a prefork worker's or granian's children too."""
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, sig)

    def signal_main(self, sig: int) -> None:
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, sig)

    def children(self) -> list[int]:
        """Direct children of the main process (a prefork worker's pool processes)."""
        if not self.running():
            return []
        try:
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return []
        return [int(item) for item in text.split()]

    def stop(self, timeout: float = 20.0) -> None:
        stop_all([self], timeout=timeout)


def stop_all(processes: Iterable[Process], *, timeout: float = 20.0) -> None:
    """SIGTERM every group, wait for all with one deadline, then SIGKILL each group (stragglers too)."""
    started = [process for process in processes if process.popen is not None]
    for process in started:
        process.expected_exit = True
        if process.running():
            process.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in started:
        assert process.popen is not None
        try:
            process.popen.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(5)
        # Children left behind by a leader that exited go too.
        process.signal_group(signal.SIGKILL)


def run_checked(
    argv: list[str], env: Mapping[str, str], *, what: str, log_path: Path | None = None, timeout: float = 300.0
) -> str:
    """Run a one-shot command to completion; its stdout, or `HarnessError` with its output."""
    result = subprocess.run(
        argv,
        cwd=ROOT,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as log:
            log.write(f"\n===== {what} (rc={result.returncode}) =====\n{result.stdout}\n{result.stderr}\n")
    if result.returncode != 0:
        raise HarnessError(f"{what} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return result.stdout
