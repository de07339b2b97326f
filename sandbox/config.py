"""One sandbox process's set-up: its gateway code, wire format, address, credentials and delays."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Format = Literal["json", "xml"]
FORMATS: tuple[Format, ...] = ("json", "xml")


def default_api_key(code: str) -> str:
    return f"demo-{code}-api-key"


def default_webhook_secret(code: str) -> str:
    return f"demo-{code}-webhook-secret"


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    code: str
    format: Format
    port: int
    host: str = "127.0.0.1"
    api_key: str = ""  # empty: `default_api_key(code)`
    webhook_secret: str = ""  # empty: `default_webhook_secret(code)`
    callback_delay: float = 0.5
    timeout_delay: float = 15.0
    state_file: Path | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be 'json' or 'xml', not {self.format!r}")
        if not self.api_key:
            object.__setattr__(self, "api_key", default_api_key(self.code))
        if not self.webhook_secret:
            object.__setattr__(self, "webhook_secret", default_webhook_secret(self.code))
