"""/metrics as Prometheus reads it, for tests that check a series."""

from __future__ import annotations

from typing import Any

from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

TOKEN = "scrape-token-for-tests"
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: Any) -> Series:
    """Every sample of /metrics, by name and exact label set, fetched as Prometheus does: with its token."""
    with override_settings(PAYGATE_METRICS_TOKEN=TOKEN):
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def sample(series: Series, name: str, **labels: str) -> float | None:
    """The sample of `name` with exactly these labels, if there is one."""
    return series.get((name, frozenset(labels.items())))


def total(series: Series, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(value for (metric, have), value in series.items() if metric == name and wanted <= have)
