"""The chaos run's fault executor: carries out the plan against the stack, restarts what died, heals."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
import time
from typing import Any

from chaos.plan import PlannedFault
from chaos.stack import (
    SANDBOXES,
    WEBHOOK_PATH,
    WEBHOOK_WORKER,
    ChaosStack,
    http_get,
    http_post_json,
    redis_ping,
    sandbox_url,
    wait_for,
)
from chaos.timeline import Timeline
from harness import Receiver


class Faults:
    """Carries out the plan in one thread; the monitor (same lock) restarts what died unexpectedly."""

    def __init__(
        self,
        stack: ChaosStack,
        plan: list[PlannedFault],
        timeline: Timeline,
        rng: random.Random,
        receiver: Receiver | None = None,
    ) -> None:
        self.stack = stack
        self.receiver = receiver
        self.plan = plan
        self.timeline = timeline
        self.rng = rng
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._monitor_stop = False
        self._thread = threading.Thread(target=self._run, name="faults", daemon=True)
        self._monitor = threading.Thread(target=self._watch, name="monitor", daemon=True)
        self.unexpected_exits: list[dict[str, Any]] = []
        self.paused: set[int] = set()
        self._restart_at: dict[str, float] = {}
        self.errors: list[str] = []

    def start(self) -> None:
        self._thread.start()
        self._monitor.start()

    def stop_plan(self) -> None:
        """Stop injecting (the monitor keeps watching until `stop_monitor`)."""
        self._stop.set()
        self._thread.join(60)

    def stop_monitor(self) -> None:
        self._stop.set()
        self._monitor_stop = True
        self._monitor.join(10)

    def close(self) -> None:
        """Stop the plan and the monitor without waiting, and leave nothing frozen: for a teardown."""
        self._stop.set()
        self._monitor_stop = True
        for pid in list(self.paused):
            self._resume(pid)
        if "redis" in self.stack.procs:
            self.stack.procs["redis"].signal_main(signal.SIGCONT)

    def _run(self) -> None:
        t0 = time.monotonic()
        for fault in self.plan:
            delay = t0 + fault.at - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            if self._stop.is_set():
                return
            try:
                with self.lock:
                    getattr(self, f"_do_{fault.kind}")(**fault.params)
            except Exception as exc:  # noqa: BLE001 - a fault that could not be injected is reported; the run goes on
                self.errors.append(f"{fault.kind} {fault.params}: {exc!r}")
                self.timeline.record("fault_error", kind_failed=fault.kind, error=repr(exc))

    # Each fault

    def _do_sandbox_mode(self, code: str, **setting: Any) -> None:
        http_post_json(f"{sandbox_url(code)}/_sandbox/mode", setting)
        self.timeline.record("sandbox_mode", code=code, **setting)
        self.timeline.faults[f"sandbox_mode_{setting.get('mode', 'ok')}"] += 1
        if setting.get("duplicate_callbacks"):
            self.timeline.faults["sandbox_duplicate_callbacks_on"] += 1
        if setting.get("callback_jitter"):
            self.timeline.faults["sandbox_callback_jitter_on"] += 1
        if setting.get("callback") == "failed":
            self.timeline.faults["sandbox_callback_failed_on"] += 1

    def _do_worker_kill(self, target: str, node: int) -> None:
        proc = self.stack.procs[f"worker-{node}"]
        if not proc.running():
            self._revive(proc.name, "was down before the kill")
        if target == "child":
            children = proc.children()
            if not children:
                self.timeline.record("worker_kill_skipped", node=node, reason="no pool child found")
                return
            victim = self.rng.choice(children)
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                return
            self.timeline.record("worker_kill_child", fault=True, node=node, pid=victim)
            return
        # The main process: SIGKILL it, then its pool (as an OOM kill of the container would), restart.
        proc.expected_exit = True
        main_pid = proc.pid
        proc.signal_main(signal.SIGKILL)
        proc.signal_group(signal.SIGKILL)
        assert proc.popen is not None
        proc.popen.wait(10)
        self.timeline.record("worker_kill_main", fault=True, node=node, pid=main_pid)
        time.sleep(self.rng.uniform(0.5, 2.0))  # the fault's duration: the node stays down a moment
        proc = self.stack.start_worker_node(node)
        self.timeline.record("worker_restarted", node=node, pid=proc.pid)

    def _do_webhook_worker_kill(self) -> None:
        """SIGKILL the webhook dispatcher (its tries in flight die with it), start it again."""
        proc = self.stack.procs[WEBHOOK_WORKER]
        proc.expected_exit = True
        main_pid = proc.pid
        proc.signal_group(signal.SIGKILL)
        assert proc.popen is not None
        proc.popen.wait(10)
        self.timeline.record("webhook_worker_kill", fault=True, pid=main_pid)
        time.sleep(self.rng.uniform(0.5, 2.0))
        proc = self.stack.start_webhook_worker()
        self.timeline.record("webhook_worker_restarted", pid=proc.pid)

    def _do_receiver_outage(self, down_for: float) -> None:
        """The merchant's endpoint answers 503 for a while."""
        if self.receiver is None:
            return
        self.receiver.on(WEBHOOK_PATH, 503)
        self.timeline.record("receiver_outage", fault=True, down_for=down_for)
        try:
            time.sleep(down_for)
        finally:
            self.receiver.on(WEBHOOK_PATH, 200)
        self.timeline.record("receiver_up")

    def _do_redis_restart(self, down_for: float) -> None:
        proc = self.stack.procs["redis"]
        proc.expected_exit = True
        proc.signal_group(signal.SIGKILL)
        assert proc.popen is not None
        proc.popen.wait(10)
        self.timeline.record("redis_restart", fault=True, down_for=down_for)
        time.sleep(down_for)
        self.stack.start_redis()
        self.timeline.record("redis_up")

    def _do_rabbitmq_restart(self, down_for: float) -> None:
        self.timeline.record("rabbitmq_restart", fault=True, down_for=down_for)
        started = time.monotonic()
        self.stack.rabbitmq_stop()
        self.timeline.record("rabbitmq_down", stop_seconds=round(time.monotonic() - started, 1))
        time.sleep(down_for)
        started = time.monotonic()
        self.stack.rabbitmq_start()
        self.timeline.record("rabbitmq_up", start_seconds=round(time.monotonic() - started, 1))

    def _do_redis_pause(self, pause_for: float) -> None:
        proc = self.stack.procs["redis"]
        proc.signal_main(signal.SIGSTOP)
        self.timeline.record("redis_pause", fault=True, pause_for=pause_for)
        try:
            time.sleep(pause_for)
        finally:
            proc.signal_main(signal.SIGCONT)
        self.timeline.record("redis_resumed")

    def _do_worker_pause(self, node: int, pause_for: float) -> None:
        proc = self.stack.procs[f"worker-{node}"]
        children = proc.children()
        if not children:
            self.timeline.record("worker_pause_skipped", node=node, reason="no pool child found")
            return
        victim = self.rng.choice(children)
        try:
            os.kill(victim, signal.SIGSTOP)
        except ProcessLookupError:
            return
        self.paused.add(victim)
        self.timeline.record("worker_pause", fault=True, node=node, pid=victim, pause_for=pause_for)

        def resume() -> None:
            self._resume(victim)
            self.timeline.record("worker_resumed", node=node, pid=victim)

        timer = threading.Timer(pause_for, resume)
        timer.daemon = True
        timer.start()

    def _resume(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        self.paused.discard(pid)

    def _do_postgres_restart(self, down_for: float) -> None:
        self.timeline.record("postgres_stopping", down_for=down_for)
        self.stack.postgres_stop()
        self.timeline.record("postgres_restart", fault=True, down_for=down_for)
        time.sleep(down_for)
        self.stack.postgres_start()
        self.timeline.record("postgres_up")

    def _do_sandbox_restart(self, code: str) -> None:
        proc = self.stack.procs[f"sandbox-{code}"]
        mode = http_get(f"{sandbox_url(code)}/_sandbox/mode")[1]
        proc.expected_exit = True
        proc.signal_group(signal.SIGKILL)
        assert proc.popen is not None
        proc.popen.wait(10)
        self.timeline.record("sandbox_restart", fault=True, code=code)
        time.sleep(self.rng.uniform(0.5, 2.0))
        self.stack.start_chaos_sandbox(code)
        wait_for(
            lambda: http_get(f"{sandbox_url(code)}/_sandbox/mode")[0] == 200,
            timeout=30,
            what=f"sandbox {code} after its restart",
        )
        if mode:  # a restarted sandbox starts in `ok`: keep the behaviour it had
            http_post_json(f"{sandbox_url(code)}/_sandbox/mode", json.loads(mode))
        self.timeline.record("sandbox_up", code=code)

    # The monitor

    def _revive(self, name: str, why: str) -> None:
        proc = self.stack.procs[name]
        self.unexpected_exits.append(
            {
                "t": self.timeline.offset(),
                "process": name,
                "returncode": proc.returncode(),
                "why": why,
                "log_tail": proc.log_tail(15),
            }
        )
        self.timeline.record("unexpected_exit", process=name, returncode=proc.returncode())
        self.stack.restart(name)

    def _watch(self) -> None:
        while not self._monitor_stop:
            time.sleep(1.0)
            with self.lock:
                for name, proc in list(self.stack.procs.items()):
                    if proc.running() or proc.expected_exit or proc.popen is None:
                        continue
                    # Restart at most every 5 s per process, so a crash loop does not spin.
                    if time.monotonic() < self._restart_at.get(name, 0.0):
                        continue
                    self._restart_at[name] = time.monotonic() + 5.0
                    try:
                        self._revive(name, "exited on its own")
                    except Exception as exc:  # noqa: BLE001 - reported; the monitor tries again later
                        self.errors.append(f"restart of {name}: {exc!r}")

    def heal(self) -> None:
        """Everything up and every sandbox `ok` with callbacks on, no duplicates, no jitter."""
        with self.lock:
            for pid in list(self.paused):
                self._resume(pid)
            if self.receiver is not None:
                self.receiver.on(WEBHOOK_PATH, 200)
            if "redis" in self.stack.procs:
                self.stack.procs["redis"].signal_main(signal.SIGCONT)
            if self.stack.postgres_stopped:
                self.stack.postgres_start()
            if self.stack.rabbitmq_stopped:
                self.stack.rabbitmq_start()
            if not redis_ping():
                self.stack.start_redis()
            for name, proc in list(self.stack.procs.items()):
                if not proc.running():
                    self.stack.restart(name)
                    self.timeline.record("healed", process=name)
            for code in SANDBOXES:
                wait_for(
                    lambda code=code: http_get(f"{sandbox_url(code)}/_sandbox/mode")[0] == 200,
                    timeout=30,
                    what=f"sandbox {code}",
                )
                http_post_json(
                    f"{sandbox_url(code)}/_sandbox/mode",
                    {"mode": "ok", "callback": "completed", "duplicate_callbacks": False, "callback_jitter": 0.0},
                )
        self.timeline.record("healed_all")
