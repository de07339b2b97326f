"""Paygate's benchmark: `python -m bench.run --help` (`make bench`). Nothing here is imported by the app."""
