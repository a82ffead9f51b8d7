"""Fixtures for the operations tests: scraping /metrics, reading its samples."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

# The checkout fixtures (a saved card, a shopper, a product).
from tests.payments.conftest import (  # noqa: F401
    fault,
    generous_rate_limit,
    make_card,
    mug,
    shopper,
)

METRICS_TOKEN = "metrics-" + "m" * 32


class Scrape:
    """One scrape of /metrics, parsed: `value(name, **labels)` adds up the matching samples
    (0 when there is none)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [sample for family in text_string_to_metric_families(text)
                        for sample in family.samples]

    def value(self, name: str, **labels: str) -> float:
        return sum(sample.value for sample in self.samples if sample.name == name
                   and all(sample.labels.get(k) == v for k, v in labels.items()))

    def names(self) -> set[str]:
        return {sample.name for sample in self.samples}


@pytest.fixture
def scrape(app: Flask, client: FlaskClient) -> Callable[[], Scrape]:
    """scrape() -> the metrics as Prometheus reads them, with the operator's token."""
    app.config["METRICS_TOKEN"] = METRICS_TOKEN

    def read() -> Scrape:
        response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        assert response.content_type.startswith("text/plain")
        return Scrape(response.get_data(as_text=True))

    return read
