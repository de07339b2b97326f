"""`make apicheck`: every operation of the OpenAPI schema, checked by schemathesis against a live stack.

    .venv/bin/python -m apicheck.run [--max-examples N] [--seed N] [--url URL --api-key KEY]

1. Start the stack as `make run` does — PostgreSQL and Redis, DEBUG as `make run` sets it (True
   unless DEBUG says otherwise), migrations, `seed_demo --staff --demo`, an API key, then web
   (bin/web), the payments worker (on the Procfile's queues), celery-beat and the three sandbox
   gateways — on its own database (`paygate_apicheck`, recreated; APICHECK_DB_NAME moves it), a
   private redis-server and free ports, so that it runs beside a `make run` or another check on
   the same machine.
   The webhook worker is left out on purpose: the check registers webhook endpoints with
   generated URLs, and nothing should POST events to those.
2. Run `st run` on the schema the server serves (`/api/schema/`): every operation under
   `/api/v1/` that the schema lists (nothing here names one, so new endpoints are covered as
   they appear), with every check schemathesis has (`--checks all`: no 5xx; only documented
   status codes, content types, headers and bodies; every request the schema allows is
   accepted and every one it forbids is refused; missing auth is refused; ...) in all of its
   phases (examples, coverage, fuzzing, stateful), with a fixed seed. apicheck/schemathesis.toml
   holds the settings and why; apicheck/hooks.py the hooks.
3. Stop everything. The exit status is schemathesis' own: 0 when no check failed (2 when the
   stack did not start).

With `--url` and `--api-key` it checks a server that already runs (a `make run`) instead.
Logs of every process: apicheck/.work/logs/; schemathesis' reports (JUnit XML, and a pytest
file that replays each failure): apicheck/.work/report/.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import harness
from harness import HarnessError, wait_for

ROOT = harness.ROOT
APICHECK_DIR = ROOT / "apicheck"
WORK_DIR = APICHECK_DIR / ".work"
LOG_DIR = WORK_DIR / "logs"
DATA_DIR = WORK_DIR / "data"
REPORT_DIR = WORK_DIR / "report"
CONFIG_FILE = APICHECK_DIR / "schemathesis.toml"

HOST = harness.HOST
DB_NAME = harness.db_name("APICHECK", "paygate_apicheck")
# The demo gateways (CONTRACT §5): code -> data format.
SANDBOXES = harness.DEMO_SANDBOXES
# Cases per operation in the fuzzing phase; the examples, coverage and stateful phases add their
# own. About a minute of schemathesis for the operations of today.
MAX_EXAMPLES = 20
SEED = 1


def procfile_queues(process: str) -> str | None:
    """The `--queues` of a Procfile process: `make run` starts the Procfile."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        argv = shlex.split(command)
        if name.strip() == process and "--queues" in argv[:-1]:
            return argv[argv.index("--queues") + 1]
    return None


class ApiStack(harness.Stack):
    """PostgreSQL, a private Redis and Paygate's processes, as `make run` starts them."""

    def __init__(self) -> None:
        self.redis_port = harness.free_port()
        # Free ports, found now: nothing else on the machine is disturbed, whatever runs there.
        self.config = harness.StackConfig(
            db_name=DB_NAME,
            web_port=harness.free_port(),
            sandboxes={code: (data_format, harness.free_port()) for code, data_format in SANDBOXES.items()},
            redis_url=f"redis://{HOST}:{self.redis_port}/0",
            data_dir=DATA_DIR,
        )
        self.url = self.config.web_url
        self.api_key = ""
        super().__init__(env=self._env(), log_dir=LOG_DIR)

    def _env(self) -> dict[str, str]:
        return self.config.env(
            {
                # As bin/run: a development stack unless DEBUG says otherwise.
                "DEBUG": os.environ.get("DEBUG", "True"),
                # Thousands of requests a minute from one address, many of them without a valid key
                # on purpose: the rate limits would answer the rest with 429 (documented, but then
                # the check no longer sees what the API does with them).
                "PAYGATE_RATE_LIMIT": "",
                "PAYGATE_AUTH_FAILURE_LIMIT": "",
                "PAYGATE_CALLBACK_FAILURE_LIMIT": "",
                "LOG_LEVEL": "INFO",
            }
        )

    def start_all(self) -> None:
        for folder in (LOG_DIR, DATA_DIR, REPORT_DIR):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)
        (DATA_DIR / "metrics").mkdir()
        harness.recreate_database(DB_NAME)
        self.start_redis(port=self.redis_port)
        # The sandboxes need no database: they start while the migrations run.
        for code, (data_format, port) in self.config.sandboxes.items():
            self.start_sandbox(code, data_format=data_format, port=port, wait=False)
        self.manage("migrate", "--noinput")
        self.manage("seed_demo", "--staff", "--demo")
        self.api_key = self.manage("create_api_key", "apicheck").strip().splitlines()[-1].strip()
        self.start_worker("worker", concurrency=1, queues=procfile_queues("worker"))
        self.start_beat(pidfile=WORK_DIR / "celerybeat.pid")
        for code, (_, port) in self.config.sandboxes.items():
            self.wait_sandbox(code, port=port)
        self.start_web(port=self.config.web_port)
        wait_for(
            lambda: harness.http_get(f"{self.url}/readyz")[0] == 200,
            timeout=90,
            what="web /readyz",
            alive=self.check_alive,
        )


def schemathesis_argv(*, url: str, api_key: str, max_examples: int, seed: int) -> list[str]:
    st = Path(sys.executable).with_name("st")
    return [
        str(st) if st.exists() else "st",
        "--config-file",
        str(CONFIG_FILE),
        "run",
        f"{url}/api/schema/",
        "--include-path-regex",
        "^/api/v1/",
        "--checks",
        "all",
        "--header",
        f"Authorization: Api-Key {api_key}",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        # One worker: the machine's cores are the server's, and hypothesis' lambda descriptions
        # (ast.parse) are not thread-safe on CPython 3.11 ("AST constructor recursion depth mismatch").
        "--workers",
        "1",
        # Every failure, not only the first of each operation.
        "--continue-on-failure",
        "--report",
        "junit,pytest",
        "--report-dir",
        str(REPORT_DIR),
        "--no-color",
    ]


def run_schemathesis(*, url: str, api_key: str, max_examples: int, seed: int) -> int:
    argv = schemathesis_argv(url=url, api_key=api_key, max_examples=max_examples, seed=seed)
    shown = ["Authorization: Api-Key ***" if arg.startswith("Authorization:") else arg for arg in argv]
    print("==> " + " ".join(shown), flush=True)
    # The hooks module (apicheck/hooks.py) is imported by name.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(argv, cwd=ROOT, env=env, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-examples", type=int, default=MAX_EXAMPLES, help="fuzzed cases per operation")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--url", help="check this running server (e.g. http://127.0.0.1:8000) instead")
    parser.add_argument("--api-key", help="with --url: an API key of that server (`make run` prints one)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.url:
        if not args.api_key:
            parser.error("--url needs --api-key")
        REPORT_DIR.mkdir(parents=True, exist_ok=True)
        url = args.url.rstrip("/")
        rc = run_schemathesis(url=url, api_key=args.api_key, max_examples=args.max_examples, seed=args.seed)
    else:
        with ApiStack() as stack:
            print(f"==> Starting the stack (database {DB_NAME}, logs in {LOG_DIR.relative_to(ROOT)}/)", flush=True)
            try:
                stack.start_all()
            except HarnessError as exc:
                print(f"The stack did not start: {exc}", file=sys.stderr)
                return 2
            print(f"==> Stack up in {time.monotonic() - started:.0f}s at {stack.url}", flush=True)
            rc = run_schemathesis(url=stack.url, api_key=stack.api_key, max_examples=args.max_examples, seed=args.seed)
            try:
                stack.check_alive()
            except HarnessError as exc:
                print(f"A process of the stack died during the check: {exc}", file=sys.stderr)
                rc = rc or 2
    print(f"==> schemathesis exited {rc}; {time.monotonic() - started:.0f}s in all", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
