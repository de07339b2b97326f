"""The command line of `python -m sandbox` (and of `manage.py run_sandbox_gateway`, which hands over to it)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .config import FORMATS, SandboxConfig, default_api_key, default_webhook_secret
from .server import run_forever

DESCRIPTION = "Run a sandbox payment gateway (JSON or SOAP) over HTTP, for tests and local runs."


class UsageError(Exception):
    """An option is invalid, or the sandbox cannot start (port taken, unreadable state file)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--code", required=True, help="Gateway code, e.g. 'alpha'.")
    parser.add_argument("--format", required=True, choices=FORMATS, help="Wire protocol.")
    parser.add_argument("--port", required=True, type=int, help="Port to listen on (0: any free port).")
    parser.add_argument("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1).")
    parser.add_argument("--api-key", default=None, help="Expected API key (default demo-<code>-api-key).")
    parser.add_argument(
        "--webhook-secret", default=None, help="Callback signing secret (default demo-<code>-webhook-secret)."
    )
    parser.add_argument(
        "--callback-delay", type=float, default=0.5, help="Seconds before a callback is sent (default 0.5)."
    )
    parser.add_argument(
        "--timeout-delay", type=float, default=15.0, help="Seconds `timeout` mode holds answers (default 15)."
    )
    parser.add_argument("--state-file", type=Path, default=None, help="Persist payments to this JSON file.")


def config_from_options(options: Mapping[str, Any]) -> SandboxConfig:
    """The configuration the parsed options describe; UsageError names what is wrong."""
    code: str = options["code"]
    if not code.strip():
        raise UsageError("--code must not be empty")
    if not 0 <= options["port"] <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    if options["callback_delay"] < 0 or options["timeout_delay"] < 0:
        raise UsageError("--callback-delay and --timeout-delay must not be negative")
    return SandboxConfig(
        code=code,
        format=options["format"],
        host=options["host"],
        port=options["port"],
        api_key=options["api_key"] or default_api_key(code),
        webhook_secret=options["webhook_secret"] or default_webhook_secret(code),
        callback_delay=options["callback_delay"],
        timeout_delay=options["timeout_delay"],
        state_file=options["state_file"],
    )


def run(options: Mapping[str, Any], announce: Callable[[str], None]) -> SandboxConfig:
    """Serve until SIGTERM or SIGINT (in the main thread); the configuration it ran with."""
    config = config_from_options(options)
    try:
        run_forever(config, announce)
    except (OSError, ValueError) as exc:  # e.g. the port is taken, the state file is unreadable
        raise UsageError(f"sandbox {config.code} on {config.host}:{config.port}: {exc}") from exc
    return config


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m sandbox") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_arguments(parser)
    options = vars(parser.parse_args(argv))
    # Without Django nothing else configures logging: one line per request and per callback.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    def announce(line: str) -> None:
        print(line, flush=True)

    try:
        config = run(options, announce)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"sandbox {config.code} stopped", flush=True)
    return 0
