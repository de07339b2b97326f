"""The API check: schemathesis, with all its checks, against a live stack started as `make run` starts it."""
