"""A fake payment gateway process for integration tests and local runs (see `server`)."""

from .server import SandboxConfig, SandboxServer, run_forever

__all__ = ["SandboxConfig", "SandboxServer", "run_forever"]
