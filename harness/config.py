"""Where a live stack runs, described once: its database, broker, cache, ports, data folder and secrets.

apicheck, chaos, bench and the routing simulation each start Paygate's processes on a stack of
their own, on 127.0.0.1. Each says where with a `StackConfig` (its database name, web port,
sandbox ports and Redis) and gives every process `StackConfig.env(...)`: production settings with
fresh secrets (`isolated_env`) pointed at that stack, plus what the tool itself needs. A second
checkout running the same tool at the same time moves it with `<TOOL>_DB_NAME` and
`<TOOL>_PORT_OFFSET` (`db_name`, `port_offset`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.commands import HOST, Broker, isolated_env

POSTGRES = f"{HOST}:5432"
PG_ADMIN_DSN = f"postgresql://postgres@{POSTGRES}/postgres"


# The demo's gateways (CONTRACT §5) and their wire formats: the sandboxes every tool's stack starts.
DEMO_SANDBOXES = {"acmepay": "json", "soapbank": "xml", "globex": "json"}


def demo_sandboxes(first_port: int) -> dict[str, tuple[str, int]]:
    """The demo's gateways on consecutive ports from `first_port`: code -> (data format, port)."""
    return {code: (data_format, first_port + n) for n, (code, data_format) in enumerate(DEMO_SANDBOXES.items())}


def db_name(tool: str, default: str) -> str:
    """The database a tool's stack uses: `<TOOL>_DB_NAME`, or `default`."""
    return os.environ.get(f"{tool}_DB_NAME", default)


def port_offset(tool: str) -> int:
    """Added to every port of a tool's stack: `<TOOL>_PORT_OFFSET`, or 0."""
    return int(os.environ.get(f"{tool}_PORT_OFFSET", "0"))


@dataclass(frozen=True)
class StackConfig:
    """One stack's addresses; `env()` is the environment every one of its processes runs with."""

    db_name: str
    web_port: int
    # code -> (data format, port): the sandbox gateways the demo seed points at.
    sandboxes: Mapping[str, tuple[str, int]]
    # The cache (breaker, rate limits) whichever the broker, and the broker unless `broker` says amqp.
    redis_url: str
    data_dir: Path
    # RabbitMQ, for the tools that can run on it (`broker.use("amqp")`).
    amqp_url: str = ""
    broker: Broker = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "broker", Broker(redis_url=self.redis_url, amqp_url=self.amqp_url))

    @property
    def database_url(self) -> str:
        return f"postgres://postgres@{POSTGRES}/{self.db_name}"

    @property
    def psycopg_dsn(self) -> str:
        return f"postgresql://postgres@{POSTGRES}/{self.db_name}"

    @property
    def web_url(self) -> str:
        return f"http://{HOST}:{self.web_port}"

    def sandbox_url(self, code: str) -> str:
        return f"http://{HOST}:{self.sandboxes[code][1]}"

    @property
    def ports(self) -> list[int]:
        return [self.web_port, *(port for _, port in self.sandboxes.values())]

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Production settings with fresh secrets on this stack's database, broker, cache and ports, plus `extra`."""
        return isolated_env(
            {
                "DATABASE_URL": self.database_url,
                "CELERY_BROKER_URL": self.broker.url,
                "PAYGATE_CACHE_URL": self.redis_url,
                "PAYGATE_PUBLIC_URL": self.web_url,
                "PAYGATE_DATA_DIR": str(self.data_dir),
                "PROMETHEUS_MULTIPROC_DIR": str(self.data_dir / "metrics"),
                "PAYGATE_DEMO_BASE_URLS": ",".join(f"{code}={self.sandbox_url(code)}" for code in self.sandboxes),
                **(extra or {}),
            }
        )
