"""Paygate's benchmark harness: `python bench/run.py --help`. Nothing here is imported by the app."""
