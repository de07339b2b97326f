"""`manage.py set_routing <country> --strategy priority|success_rate [...]`: a country's routing strategy."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import ApplicationError
from gateways.models import Country
from gateways.services import country_routing_set


class Command(BaseCommand):
    help = (
        "Set how a country's routes are ordered: by priority, or by each gateway's recent success rate. "
        "Takes effect for the country's next transaction in every process."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("country", help="ISO 3166-1 alpha-2 code of a configured country, e.g. DE")
        parser.add_argument("--strategy", required=True, choices=Country.RoutingStrategy.values)
        parser.add_argument(
            "--exploration",
            type=float,
            help="success_rate: share of transactions sent to another eligible route (default 0.05)",
        )
        parser.add_argument(
            "--latency-threshold-ms",
            type=int,
            help="success_rate: a gateway whose recent p95 latency exceeds this goes last; 0 removes the limit",
        )
        parser.add_argument("--window", type=int, help="a score counts at most this many recent outcomes")
        parser.add_argument(
            "--window-seconds", type=int, help="and, while the route has traffic, about this many seconds of it"
        )
        parser.add_argument("--min-samples", type=int, help="fewer outcomes than this: the default score")
        parser.add_argument("--default-score", type=float, help="score of a route with too few outcomes, 0 to 1")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            country = country_routing_set(
                country_code=options["country"].strip().upper(),
                strategy=options["strategy"],
                exploration=options["exploration"],
                latency_threshold_ms=options["latency_threshold_ms"],
                window=options["window"],
                window_seconds=options["window_seconds"],
                min_samples=options["min_samples"],
                default_score=options["default_score"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        settings = country.routing_settings
        threshold = f"{settings.latency_threshold_ms} ms" if settings.latency_threshold_ms else "none"
        self.stdout.write(
            f"{country.code}: strategy {settings.strategy}, exploration {settings.exploration:g}, "
            f"latency threshold {threshold}, window {settings.window} outcomes / {settings.window_seconds} s, "
            f"minimum samples {settings.min_samples}, default score {settings.default_score:g}"
        )
