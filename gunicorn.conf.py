"""gunicorn's settings for Paygate's web process, read from the working directory by every start.

gthread workers: WEB_CONCURRENCY processes (about one per core) of WEB_THREADS threads each.
A request spends much of its time waiting on PostgreSQL and Redis, and a gateway's callback
is applied by the web process once answered (callbacks/apis.py): with threads, callbacks and
merchant requests do not queue behind one another for a free process. Measured with
`make bench BENCH_ARGS="--quick --web-threads N"` (bench/README.md).
"""

import os

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
