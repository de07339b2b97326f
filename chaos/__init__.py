"""Paygate's fault-injection run: `python -m chaos.run --help` (`make chaos`). Nothing here is imported by the app."""
