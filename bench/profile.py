"""Where Paygate's time goes: the API path and the worker, profiled two ways.

1. `inprocess` (pyinstrument): on the bench database with live sandboxes, M transactions
   driven in this process exactly as bench/queries.py does (APIClient for the web side,
   `transaction_process` and `callback_apply` for the worker side), with one profiler per
   path: `api_create`, `worker` (process) and `callback_receive` (stored, answered, then applied).
   Writes bench/results/profile-<path>.html (pyinstrument's interactive view) and .txt.
2. `pyspy` (py-spy, sampling the real processes): the production shape under the bench's
   load (granian and Celery as in bench/run.py, workers running); py-spy records the
   granian main process and the Celery worker with their child processes for the duration.
   Writes bench/results/profile-pyspy-<web|worker>.txt (raw folded stacks in results/raw/).

Each .txt starts with the top hot spots: functions by self time, and the project's own
functions (paygate, payments, gateways, callbacks) by inclusive time.

    .venv/bin/python bench/profile.py [--only inprocess|pyspy] [--m 200] [--seconds 20]
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a script: bench/ must not shadow the stdlib `profile`
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(_here))

import argparse
import re
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import load, stack

PROJECT_PACKAGES = ("paygate/", "payments/", "gateways/", "callbacks/")
TOP = 25


@dataclass
class HotSpots:
    """Seconds per function: self time (where the CPU is) and inclusive time (what it costs, callees included)."""

    total: float
    self_time: dict[str, float]
    inclusive: dict[str, float]
    # The project's own lines by inclusive time (py-spy only: it samples the line each frame is at).
    project_lines: dict[str, float] = field(default_factory=dict)

    def render(self, title: str) -> str:
        lines = [f"# {title}", f"total sampled: {self.total:.2f}s", "", f"## Top {TOP} functions by self time", ""]
        for name, seconds in sorted(self.self_time.items(), key=lambda item: -item[1])[:TOP]:
            lines.append(f"{seconds:8.3f}s {100 * seconds / self.total:5.1f}%  {name}")
        lines += ["", f"## Top {TOP} project functions by inclusive time (callees included)", ""]
        project = {name: s for name, s in self.inclusive.items() if _is_project(name)}
        for name, seconds in sorted(project.items(), key=lambda item: -item[1])[:TOP]:
            lines.append(f"{seconds:8.3f}s {100 * seconds / self.total:5.1f}%  {name}")
        if self.project_lines:
            lines += ["", f"## Top {TOP} project lines by inclusive time (the line each frame was executing)", ""]
            for name, seconds in sorted(self.project_lines.items(), key=lambda item: -item[1])[:TOP]:
                lines.append(f"{seconds:8.3f}s {100 * seconds / self.total:5.1f}%  {name}")
        lines += ["", "## Where the self time is, by library (sum of its functions' self time)", ""]
        areas: dict[str, float] = defaultdict(float)
        for name, seconds in self.self_time.items():
            areas[_area(name) or ("project code" if _is_project(name) else "other")] += seconds
        for area, seconds in sorted(areas.items(), key=lambda item: -item[1])[:15]:
            lines.append(f"{seconds:8.3f}s {100 * seconds / self.total:5.1f}%  {area}")
        return "\n".join(lines) + "\n"


def _is_project(name: str) -> bool:
    location = name.rsplit("(", 1)[-1]
    return any(location.startswith(package) for package in PROJECT_PACKAGES)


_AREAS = (
    ("psycopg/connection.py", "psycopg: waiting for PostgreSQL (Connection.wait)"),
    ("psycopg", "psycopg (PostgreSQL driver)"),
    ("django/db/models/sql", "Django ORM: SQL compilation / execution"),
    ("django/db", "Django ORM: models, querysets, backends"),
    ("rest_framework", "Django REST framework"),
    ("fernet_fields", "Fernet field encryption"),
    ("cryptography", "cryptography"),
    ("kombu", "kombu (broker client)"),
    ("celery", "Celery"),
    ("redis", "redis client"),
    ("prometheus_client", "prometheus_client"),
    ("logging", "logging"),
    ("requests", "requests / urllib3"),
    ("django/core/handlers", "Django request handling"),
    ("django/", "Django (other)"),
    ("granian", "granian"),
    ("gunicorn", "gunicorn"),
    ("json", "json"),
    ("billiard", "billiard (Celery's pool)"),
    ("socket", "sockets"),
    ("<built-in>", "builtins"),
)


def _area(name: str) -> str | None:
    location = name.rsplit("(", 1)[-1]
    for marker, area in _AREAS:
        if marker in location:
            return area
    return None


def _frame_name(function: str, path: str | None, line: int | None) -> str:
    return f"{function} ({_short(path or '?')}:{line or 0})"


def _short(path: str) -> str:
    for marker in ("site-packages/", str(stack.ROOT) + "/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


# --- 1. in-process, pyinstrument --------------------------------------------------------------------


def _pyinstrument_hotspots(session: Any) -> HotSpots:
    from pyinstrument.frame import Frame

    self_time: dict[str, float] = defaultdict(float)
    inclusive: dict[str, float] = defaultdict(float)

    def walk(frame: Frame, active: frozenset[str]) -> None:
        name = _frame_name(frame.function, frame.file_path, frame.line_no)
        self_time[name] += frame.total_self_time  # includes its synthetic [self] / [await] children
        if name not in active:  # recursion: count a function's time once per stack
            inclusive[name] += frame.time
        for child in frame.children:
            if not child.is_synthetic:
                walk(child, active | {name})

    root = session.root_frame()
    if root is not None:
        walk(root, frozenset())
    return HotSpots(total=session.duration or 1e-9, self_time=dict(self_time), inclusive=dict(inclusive))


def _html(session: Any) -> str:
    """pyinstrument's interactive page, kept to a few MB: resampled, tiny and repeated calls folded."""
    from pyinstrument import processors
    from pyinstrument.renderers import HTMLRenderer

    if len(session.frame_records) > 20_000:
        session = session.resample(interval=session.duration / 20_000)
    renderer = HTMLRenderer(resample_interval=0)
    renderer.preprocessors = [
        processors.remove_importlib,
        processors.aggregate_repeated_calls,
        processors.remove_irrelevant_nodes,
    ]
    renderer.preprocessor_options = {"filter_threshold": 0.002}
    return renderer.render(session)


def profile_inprocess(m: int, results_dir: Path) -> list[Path]:
    from pyinstrument import Profiler

    from bench import queries

    api = queries.api_client("bench-profile")
    profilers = {
        "api_create": Profiler(interval=0.0005),
        "worker": Profiler(interval=0.0005),
        "callback_receive": Profiler(interval=0.0005),
    }
    path_of = {
        "api_create": "api_create",
        "worker_process": "worker",
        "callback_receive": "callback_receive",
        "callback_apply": "callback_receive",
    }

    def run(step: str, fn: Callable[[], Any]) -> Any:
        profiler = profilers[path_of[step]]
        profiler.start()
        try:
            return fn()
        finally:
            profiler.stop()

    countries = (("DE", "EUR"), ("GB", "GBP"), ("US", "USD"), ("BR", "BRL"))
    queries.set_callbacks("none")
    try:
        for index in range(10):  # warm-up, not profiled
            country, currency = countries[index % 4]
            queries.one_transaction(
                api, country=country, currency=currency, kind="deposit", tag=f"pw-{time.time()}-{index}"
            )
        for index in range(m):
            country, currency = countries[index % 4]
            kind = "deposit" if index % 2 else "withdrawal"
            queries.one_transaction(
                api, country=country, currency=currency, kind=kind, tag=f"p-{time.time()}-{index}", run=run
            )
    finally:
        queries.set_callbacks("completed")
    paths = []
    for name, profiler in profilers.items():
        session = profiler.last_session
        if session is None:
            continue
        html = results_dir / f"profile-{name}.html"
        html.write_text(_html(session))
        text = results_dir / f"profile-{name}.txt"
        per_txn_ms = 1000 * session.duration / m
        summary = _pyinstrument_hotspots(session).render(
            f"pyinstrument, in-process: {name}, {m} transactions, {per_txn_ms:.2f} ms of wall time per transaction"
        )
        tree = profiler.output_text(unicode=True, color=False).replace(f"{Path.cwd()}/", "")  # no local paths
        text.write_text(summary + "\n\n# Call tree\n\n" + tree)
        paths += [html, text]
    return paths


# --- 2. the real processes, py-spy ------------------------------------------------------------------

_FOLDED = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")


def _folded_hotspots(path: Path, rate: int) -> HotSpots:
    """py-spy's raw output: `frame;frame;... count` per line, frames as `function (file:line)`."""
    self_time: dict[str, float] = defaultdict(float)
    inclusive: dict[str, float] = defaultdict(float)
    project_lines: dict[str, float] = defaultdict(float)
    total = 0.0
    for line in path.read_text(errors="replace").splitlines():
        match = _FOLDED.match(line.strip())
        if not match:
            continue
        seconds = int(match["count"]) / rate
        frames = [_split(frame) for frame in match["stack"].split(";") if frame and not frame.startswith("process ")]
        if not frames:
            continue
        total += seconds
        self_time[frames[-1][0]] += seconds
        for function in {function for function, _ in frames}:
            inclusive[function] += seconds
        for at_line in {at_line for function, at_line in frames if _is_project(function)}:
            project_lines[at_line] += seconds
    return HotSpots(
        total=total or 1e-9, self_time=dict(self_time), inclusive=dict(inclusive), project_lines=dict(project_lines)
    )


def _split(frame: str) -> tuple[str, str]:
    """`function (path:line)` → (`function (path)`, `function (path:line)`), paths shortened."""
    match = re.match(r"^(?P<function>.*) \((?P<path>[^()]*?)(?::(?P<line>\d+))?\)$", frame.strip())
    if not match:
        return frame.strip(), frame.strip()
    path = _short(match["path"])
    return f"{match['function']} ({path})", f"{match['function']} ({path}:{match['line'] or 0})"


def profile_pyspy(
    *,
    seconds: float,
    concurrency: int,
    web_workers: int,
    web_threads: int,
    worker_processes: int,
    worker_concurrency: int,
    rate: int,
    results_dir: Path,
) -> list[Path]:
    data_dir = stack.WORK_DIR / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = stack.bench_env(data_dir, stack.Secrets.generate())
    spy = str(stack.VENV_BIN / "py-spy")
    paths: list[Path] = []
    with stack.Stack(env=env, log_dir=stack.WORK_DIR / "logs" / "profile") as bench:
        api_key = bench.prepare()
        bench.start_sandboxes()
        bench.start_web(name="web", port=stack.WEB_PORT, workers=web_workers, threads=web_threads)
        bench.start_beat(data_dir)
        bench.start_workers(prefix="worker", processes=worker_processes, concurrency=worker_concurrency)
        targets = {
            "web": bench.procs[[p.name for p in bench.procs].index("web")].pid,
            "worker": bench.procs[[p.name for p in bench.procs].index("worker1")].pid,
        }
        recorders = {}
        for name, pid in targets.items():
            raw = results_dir / "raw" / f"profile-pyspy-{name}.folded"
            recorders[name] = (
                raw,
                subprocess.Popen(
                    [
                        spy,
                        "record",
                        "--pid",
                        str(pid),
                        "--subprocesses",
                        "--format",
                        "raw",
                        "--rate",
                        str(rate),
                        "--duration",
                        str(int(seconds)),
                        "--nonblocking",
                        "--output",
                        str(raw),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                ),
            )
        # Load for as long as py-spy records: a closed loop, in chunks, until its duration is over.
        deadline = time.monotonic() + seconds
        sent = 0
        while time.monotonic() < deadline:
            specs = load.make_specs(concurrency * 10, run_tag=f"spy{int(time.time())}", start=sent)
            load.drive(f"http://{stack.HOST}:{stack.WEB_PORT}", specs, concurrency=concurrency, api_key=api_key)
            sent += len(specs)
        for name, (raw, recorder) in recorders.items():
            _, err = recorder.communicate(timeout=seconds + 60)
            if recorder.returncode != 0 or not raw.exists():
                raise stack.BenchError(f"py-spy on {name} failed: {err.decode(errors='replace')[-2000:]}")
            text = results_dir / f"profile-pyspy-{name}.txt"
            text.write_text(
                _folded_hotspots(raw, rate).render(
                    f"py-spy, {name} processes under load ({sent} creates at concurrency {concurrency}, "
                    f"{seconds:.0f}s at {rate} Hz; threads py-spy found idle left out, "
                    "but waits inside C code, such as psycopg's, still count)"
                )
            )
            paths += [text, raw]
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Profile Paygate's API path and worker (see the module docstring).")
    parser.add_argument("--only", choices=["inprocess", "pyspy"], help="run one of the two profiles")
    parser.add_argument("--m", type=int, default=200, help="transactions profiled in-process (default 200)")
    parser.add_argument("--seconds", type=float, default=20.0, help="py-spy recording time (default 20)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument(
        "--web-threads", type=int, default=4, help="threads per web server process (default 4, as in production)"
    )
    parser.add_argument("--worker-processes", type=int, default=1)
    parser.add_argument("--worker-concurrency", type=int, default=4)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--results-dir", type=Path, default=stack.RESULTS_DIR)
    args = parser.parse_args(argv)
    stack.install_signal_handlers()
    (args.results_dir / "raw").mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    try:
        if args.only in (None, "inprocess"):
            print("== in-process profile (pyinstrument)", flush=True)
            data_dir = stack.WORK_DIR / "profile-data"
            data_dir.mkdir(parents=True, exist_ok=True)
            env = stack.bench_env(data_dir, stack.Secrets.generate())
            # This process becomes a bench process: the bench database, broker db, settings.
            os.environ.clear()
            os.environ.update(env)
            with stack.Stack(env=env, log_dir=stack.WORK_DIR / "logs" / "profile-inprocess") as bench:
                bench.prepare()
                bench.start_sandboxes()
                paths += profile_inprocess(args.m, args.results_dir)
        if args.only in (None, "pyspy"):
            print("== py-spy profile of the running stack", flush=True)
            paths += profile_pyspy(
                seconds=args.seconds,
                concurrency=args.concurrency,
                web_workers=args.web_workers,
                web_threads=args.web_threads,
                worker_processes=args.worker_processes,
                worker_concurrency=args.worker_concurrency,
                rate=args.rate,
                results_dir=args.results_dir,
            )
    except KeyboardInterrupt:
        print("interrupted: everything started has been stopped", file=sys.stderr)
        return 130
    except stack.BenchError as exc:
        print(f"profile failed: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        if path.suffix == ".txt":
            head = path.read_text().split("\n## Top", 3)
            print("\n## Top".join(head[:3])[:6000])
    print(
        "written: "
        + ", ".join(str(p.relative_to(stack.ROOT)) if p.is_relative_to(stack.ROOT) else str(p) for p in paths)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
