"""The process harness: it stops whole process groups, fails a wait at once when its process dies,
and imports no Paygate app (tests, bench and chaos load it before Django is set up)."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest

import harness

HARNESS = Path(harness.__file__).resolve().parent
APPS = frozenset({"payments", "gateways", "callbacks", "ops", "sandbox", "paygate", "core", "bench", "chaos"})


def test_the_harness_imports_no_app() -> None:
    imported = set()
    for path in HARNESS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    assert imported & APPS == set()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of a process that is gone is reaped by init; until then it is a zombie.
    return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"


def test_stop_ends_the_whole_group_even_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    script = (
        "import signal, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(600)\n"
    )
    process = harness.Process("group", [sys.executable, "-c", script], dict(os.environ), tmp_path / "group.log")
    process.start()
    grandchild = int(harness.wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=10, what="pid"))

    process.stop(timeout=2)

    assert not process.running()
    harness.wait_for(lambda: not alive(grandchild), timeout=10, what="the grandchild to be gone")


def test_a_wait_fails_at_once_when_the_process_it_depends_on_died(tmp_path: Path) -> None:
    process = harness.Process("dies", [sys.executable, "-c", "print('bye')"], dict(os.environ), tmp_path / "d.log")
    process.start()

    with pytest.raises(harness.HarnessError, match="dies exited with 0"):
        harness.wait_for(lambda: False, timeout=30, what="never", alive=process.check_alive)

    assert "bye" in process.log_tail()


def test_control_connections_go_to_the_broker_given_whatever_the_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("CELERY_BROKER_URL", "CELERY_BROKER_READ_URL", "CELERY_BROKER_WRITE_URL"):
        monkeypatch.setenv(name, "redis://127.0.0.1:1/7")

    connection = harness.control_connection("redis://127.0.0.1:6379/9")

    assert (connection.hostname, connection.port, connection.virtual_host) == ("127.0.0.1", 6379, "9")


@pytest.mark.services
def test_workers_answer_a_ping_on_their_broker_when_the_shell_exported_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make bench` from a shell that followed the README (CELERY_BROKER_URL exported) must find its workers."""
    broker_url = os.environ["CELERY_BROKER_URL"]
    name, queue = f"pinged-{os.getpid()}", f"harness-ping-{os.getpid()}"
    try:
        with harness.Stack(env=dict(os.environ), log_dir=tmp_path) as stack:
            # A queue of its own: this worker must take none of the suite's tasks.
            stack.start_worker(name, concurrency=1, loglevel="WARNING", queues=queue)
            # Nothing listens there: a ping sent to it would never be answered.
            monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")

            stack.wait_workers([name], broker_url=broker_url, timeout=60)
    finally:
        with harness.control_connection(broker_url) as connection:
            connection.default_channel.queue_delete(queue)  # RabbitMQ keeps a queue until deleted
