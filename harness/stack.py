"""A named set of processes started together and always stopped together."""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Self

from harness.commands import (
    HOST,
    PYTHON,
    beat_argv,
    ping_workers,
    redis_argv,
    redis_ping,
    sandbox_argv,
    web_argv,
    worker_argv,
)
from harness.process import Process, http_get, run_checked, stop_all, wait_for

# Stopped after everything else, so that nothing in flight towards them is cut off by their exit.
_LAST = ("sandbox-", "redis")


class Stack:
    """Processes by name, each logging to `<log_dir>/<name>.log`; a context manager that stops them all.

    Starting a name that exists starts that process again with its first command line (a restart
    after a kill).
    """

    def __init__(self, *, env: Mapping[str, str], log_dir: Path) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.processes: dict[str, Process] = {}
        # Every process group ever started here (each child leads its own), for CPU accounting.
        self.pgids: set[int] = set()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, name: str, argv: list[str] | None = None, *, env: Mapping[str, str] | None = None) -> Process:
        process = self.processes.get(name)
        if process is None:
            if argv is None:
                raise KeyError(f"no process {name!r} to start again")
            process = Process(name, argv, env if env is not None else self.env, self.log_dir / f"{name}.log")
            self.processes[name] = process
        process.start()
        self.pgids.add(process.pid)
        return process

    def stop(self, names: Iterable[str], *, timeout: float = 20.0) -> None:
        wanted = set(names)
        stop_all([process for name, process in self.processes.items() if name in wanted], timeout=timeout)

    def forget(self, names: Iterable[str]) -> None:
        """Stop these processes and drop them, so that their names can be started with new command lines."""
        wanted = set(names)
        self.stop(wanted)
        self.processes = {name: process for name, process in self.processes.items() if name not in wanted}

    def check_alive(self) -> None:
        for process in self.processes.values():
            process.check_alive()

    def close(self) -> None:
        first = [p for name, p in self.processes.items() if not name.startswith(_LAST)]
        stop_all(first)
        stop_all([p for name, p in self.processes.items() if name.startswith(_LAST)], timeout=10)

    def manage(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 300.0) -> str:
        """A one-shot `manage.py` command in the stack's environment; its stdout."""
        return run_checked(
            [PYTHON, "manage.py", *args],
            env if env is not None else self.env,
            what=f"manage.py {' '.join(args)}",
            log_path=self.log_dir / "setup.log",
            timeout=timeout,
        )

    # --- Paygate's processes ---

    def start_web(
        self, *, name: str = "web", port: int, workers: int = 2, threads: int = 4, env: Mapping[str, str] | None = None
    ) -> Process:
        """bin/web (granian, as production) on `port`; returns once /healthz answers 200."""
        web_env = {
            **(env if env is not None else self.env),
            "PAYGATE_BIND": f"{HOST}:{port}",
            "WEB_CONCURRENCY": str(workers),
            "WEB_THREADS": str(threads),
        }
        process = self.start(name, web_argv(), env=web_env)
        wait_for(
            lambda: http_get(f"http://{HOST}:{port}/healthz")[0] == 200,
            timeout=90,
            what=f"{name} /healthz",
            alive=self.check_alive,
        )
        return process

    def start_worker(
        self,
        name: str,
        *,
        concurrency: int,
        loglevel: str = "INFO",
        queues: str | None = None,
        pool: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Process:
        """A Celery worker whose node name is `<name>@<this host>` (see `wait_workers`)."""
        argv = worker_argv(hostname=f"{name}@%h", concurrency=concurrency, loglevel=loglevel, queues=queues, pool=pool)
        return self.start(name, argv, env=env)

    def wait_workers(self, names: Iterable[str], *, broker_url: str, timeout: float = 90.0) -> None:
        """Until every named worker answers a control ping on `broker_url`."""
        hostnames = {f"{name}@{socket.gethostname()}" for name in names}
        wait_for(
            lambda: hostnames <= ping_workers(broker_url),
            timeout=timeout,
            what=f"workers {sorted(hostnames)} to answer a ping",
            interval=0.2,
            alive=self.check_alive,
        )

    def start_beat(self, *, name: str = "beat", pidfile: Path, loglevel: str = "INFO") -> Process:
        pidfile.unlink(missing_ok=True)  # left by a beat that was killed
        return self.start(name, beat_argv(pidfile=pidfile, loglevel=loglevel))

    def start_sandbox(
        self,
        code: str,
        *,
        data_format: str,
        port: int,
        callback_delay: float = 0.0,
        timeout_delay: float | None = None,
        state_file: Path | None = None,
        wait: bool = True,
    ) -> Process:
        """`python -m sandbox` named `sandbox-<code>`; with `wait`, returns once it answers."""
        argv = sandbox_argv(
            code=code,
            data_format=data_format,
            port=port,
            callback_delay=callback_delay,
            timeout_delay=timeout_delay,
            state_file=state_file,
        )
        process = self.start(f"sandbox-{code}", argv)
        if wait:
            self.wait_sandbox(code, port=port)
        return process

    def wait_sandbox(self, code: str, *, port: int, timeout: float = 60.0) -> None:
        wait_for(
            lambda: http_get(f"http://{HOST}:{port}/_sandbox/mode")[0] == 200,
            timeout=timeout,
            what=f"sandbox {code}",
            alive=self.check_alive,
        )

    def start_redis(self, *, port: int, directory: Path | None = None, name: str = "redis") -> Process:
        """A private redis-server; returns once it answers PING."""
        process = self.start(name, redis_argv(port=port, directory=directory))
        wait_for(lambda: redis_ping(port), timeout=30, what=f"redis-server :{port}", alive=process.check_alive)
        return process
