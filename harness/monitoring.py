"""Prometheus and Alertmanager beside a running stack: their configuration and command lines.

`make monitor` runs this module (`python -m harness.monitoring`) next to `make run`; the
integration test of the alerting rules starts the same binaries with the same configuration,
on free ports and with short intervals. The rules are `ops/prometheus/*.rules.yml` and the
Alertmanager configuration `ops/alertmanager/alertmanager.yml`, as in docker-compose's
`monitoring` profile.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from harness.commands import HOST, free_port, port_in_use
from harness.process import ROOT, HarnessError, http_get, wait_for
from harness.stack import Stack

RULES_DIR = ROOT / "ops" / "prometheus"
ALERTMANAGER_CONFIG = ROOT / "ops" / "alertmanager" / "alertmanager.yml"
JOB = "paygate"  # the rules' `up{job="paygate"}`


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.rules.yml"))


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def alertmanager_binary() -> str | None:
    # Debian names it prometheus-alertmanager; upstream's tarball and image, alertmanager.
    return shutil.which("alertmanager") or shutil.which("prometheus-alertmanager")


def prometheus_config(
    *,
    target: str,
    rules: Sequence[Path],
    alertmanager: str | None = None,
    token_file: Path | None = None,
    scrape_interval: str = "15s",
    evaluation_interval: str = "15s",
) -> str:
    """prometheus.yml scraping Paygate's /metrics at `target` (host:port), with a bearer token if given."""
    scrape: dict[str, Any] = {
        "job_name": JOB,
        "metrics_path": "/metrics",
        "static_configs": [{"targets": [target]}],
    }
    if token_file is not None:
        scrape["authorization"] = {"type": "Bearer", "credentials_file": str(token_file)}
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": min(scrape_interval, "10s", key=_seconds),
            "evaluation_interval": evaluation_interval,
        },
        "rule_files": [str(path) for path in rules],
        "scrape_configs": [scrape],
    }
    if alertmanager is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return yaml.safe_dump(config, sort_keys=False)


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in sorted(units, key=len, reverse=True):
        if duration.endswith(unit):
            return float(duration[: -len(unit)]) * units[unit]
    raise ValueError(f"not a duration: {duration}")


def prometheus_argv(*, config: Path, data_dir: Path, port: int) -> list[str]:
    binary = prometheus_binary()
    if binary is None:
        raise HarnessError("prometheus is not installed (Debian: apt-get install prometheus)")
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        "--storage.tsdb.retention.time=7d",
        f"--web.listen-address={HOST}:{port}",
    ]


def alertmanager_argv(*, data_dir: Path, port: int, config: Path = ALERTMANAGER_CONFIG) -> list[str]:
    binary = alertmanager_binary()
    if binary is None:
        raise HarnessError("alertmanager is not installed (Debian: apt-get install prometheus-alertmanager)")
    return [
        binary,
        f"--config.file={config}",
        f"--storage.path={data_dir}",
        f"--web.listen-address={HOST}:{port}",
        "--cluster.listen-address=",  # one instance: no gossip port
    ]


def wait_ready(stack: Stack, name: str, port: int, *, timeout: float = 60.0) -> None:
    wait_for(
        lambda: http_get(f"http://{HOST}:{port}/-/ready")[0] == 200,
        timeout=timeout,
        what=f"{name} on :{port}",
        alive=stack.check_alive,
    )


def _port(wanted: int) -> int:
    if not port_in_use(wanted):
        return wanted
    port = free_port()
    print(f"    port {wanted} is taken; using {port}")
    return port


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Prometheus and Alertmanager for the stack `make run` starts.")
    parser.add_argument("--target", default=f"{HOST}:8000", help="Paygate's web process (host:port)")
    parser.add_argument("--prometheus-port", type=int, default=int(os.environ.get("PROMETHEUS_PORT", 9090)))
    parser.add_argument("--alertmanager-port", type=int, default=int(os.environ.get("ALERTMANAGER_PORT", 9093)))
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "monitor")
    args = parser.parse_args(argv)

    data: Path = args.data_dir
    data.mkdir(parents=True, exist_ok=True)
    token_file = None
    token = os.environ.get("PAYGATE_METRICS_TOKEN", "")
    if token:  # /metrics asks for it whenever it is set
        token_file = data / "metrics_token"
        token_file.touch(mode=0o600)
        token_file.write_text(token)
    prometheus_port = _port(args.prometheus_port)
    alertmanager_port = _port(args.alertmanager_port)
    config = data / "prometheus.yml"
    config.write_text(
        prometheus_config(
            target=args.target,
            rules=rule_files(),
            alertmanager=f"{HOST}:{alertmanager_port}",
            token_file=token_file,
        )
    )

    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    with Stack(env=dict(os.environ), log_dir=data / "logs") as stack:
        stack.start("alertmanager", alertmanager_argv(data_dir=data / "alertmanager", port=alertmanager_port))
        stack.start("prometheus", prometheus_argv(config=config, data_dir=data / "prometheus", port=prometheus_port))
        try:
            wait_ready(stack, "alertmanager", alertmanager_port)
            wait_ready(stack, "prometheus", prometheus_port)
        except HarnessError as exc:
            print(f"{exc}\n(logs in {data / 'logs'})", file=sys.stderr)
            return 1
        prometheus_url = f"http://{HOST}:{prometheus_port}"
        # Debian's build serves only the classic pages, under /classic/; upstream's, /alerts.
        alerts_page = next(
            (
                f"{prometheus_url}{path}"
                for path in ("/alerts", "/classic/alerts")
                if http_get(prometheus_url + path)[0] == 200
            ),
            f"{prometheus_url}/alerts",
        )
        print(
            f"\n  Monitoring is running, scraping http://{args.target}/metrics every 15 s.\n"
            f"    Prometheus     {prometheus_url}/   alerts: {alerts_page}\n"
            f"    Alertmanager   http://{HOST}:{alertmanager_port}/\n"
            f"    Rules          {', '.join(str(p.relative_to(ROOT)) for p in rule_files())}\n"
            f"    Logs and data  {data}\n"
            "\n  Ctrl-C stops both.",
            flush=True,
        )
        while not stopping:
            try:
                stack.check_alive()
            except HarnessError as exc:
                print(exc, file=sys.stderr)
                return 1
            time.sleep(0.5)
        print("\nStopping Prometheus and Alertmanager.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
