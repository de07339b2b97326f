"""One process harness for the test suite, the benchmark and the fault-injection run.

It starts Paygate's processes the way production runs them — the web server through
`bin/web` (granian), Celery workers and beat, the sandbox gateways (`python -m
sandbox`) and, where a run needs its own broker, a private redis-server — waits
until each answers, and stops them: every child leads its own process group and logs to its
own file; stopping sends SIGTERM to the group and SIGKILL to what is left after a deadline.

It imports no Paygate app (it only runs them), so `conftest.py`, `bench/` and `chaos/`
can all use it before Django is set up.
"""

from harness.commands import (
    BROKERS,
    HOST,
    PYTHON,
    ROOT,
    Broker,
    beat_argv,
    control_connection,
    dispatcher_argv,
    free_port,
    isolated_env,
    ping_workers,
    port_in_use,
    recreate_database,
    redis_argv,
    redis_ping,
    sandbox_argv,
    web_argv,
    worker_argv,
)
from harness.config import DEMO_SANDBOXES, PG_ADMIN_DSN, POSTGRES, StackConfig, db_name, demo_sandboxes, port_offset
from harness.process import HarnessError, Process, http_get, http_post_json, run_checked, stop_all, wait_for
from harness.receiver import Receiver
from harness.stack import Stack

__all__ = [
    "DEMO_SANDBOXES",
    "demo_sandboxes",
    "BROKERS",
    "HOST",
    "PG_ADMIN_DSN",
    "POSTGRES",
    "StackConfig",
    "db_name",
    "port_offset",
    "PYTHON",
    "Broker",
    "ROOT",
    "HarnessError",
    "Process",
    "Receiver",
    "Stack",
    "beat_argv",
    "control_connection",
    "free_port",
    "http_get",
    "http_post_json",
    "isolated_env",
    "ping_workers",
    "port_in_use",
    "recreate_database",
    "redis_argv",
    "redis_ping",
    "run_checked",
    "sandbox_argv",
    "stop_all",
    "wait_for",
    "web_argv",
    "worker_argv",
    "dispatcher_argv",
]
