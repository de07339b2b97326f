"""`manage.py run_webhook_dispatcher`: the process that delivers merchant webhooks (webhooks.dispatcher)."""

from __future__ import annotations

import logging
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from webhooks.dispatcher import Dispatcher

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Deliver merchant webhooks: claim due deliveries, POST them from a pool of threads, record the results."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--threads",
            type=int,
            default=None,
            help="sending threads (default PAYGATE_WEBHOOK_DISPATCH_THREADS)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        threads = options["threads"] or int(settings.PAYGATE_WEBHOOK_DISPATCH_THREADS)
        dispatcher = Dispatcher(threads=threads, poll_seconds=float(settings.PAYGATE_WEBHOOK_POLL_SECONDS))

        def stop(signum: int, frame: Any) -> None:
            # Tries in flight end by their deadline and are recorded before the process exits.
            dispatcher.stop.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        logger.info("webhook dispatcher started with %d threads", threads)
        dispatcher.run()
        logger.info("webhook dispatcher stopped")
