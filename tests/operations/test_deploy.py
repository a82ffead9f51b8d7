"""deploy/: the alert rules and the Grafana dashboard name only metrics the site exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import Counter, Histogram

from payments_site import metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC = re.compile(r"\bpayments_[a-z_]+")
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def _family(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _exported_families(scrape) -> set[str]:
    """What a scrape shows now, and every metric the site defines (a labelled counter
    appears in a scrape only once something was counted)."""
    defined = {_family(value._name) for value in vars(metrics).values()
               if isinstance(value, Counter | Histogram)}
    return {_family(name) for name in scrape().names()} | defined


def test_every_alert_uses_exported_metrics(scrape, client):
    client.get("/")  # at least one HTTP sample
    exported = _exported_families(scrape)
    rules = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text())["groups"][0]["rules"]
    names = {rule["alert"] for rule in rules}
    assert {"CheckoutFailureRateHigh", "StripeErrorRateHigh", "StripeLatencyP99High",
            "WebhookLagHigh", "WebhookFailures", "QueueBacklogOld",
            "FailedEmailsWaiting"} <= names
    for rule in rules:
        used = {_family(m) for m in METRIC.findall(rule["expr"])}
        assert used and used <= exported, (rule["alert"], used - exported)
        assert rule["annotations"]["summary"]


def test_the_dashboard_uses_exported_metrics(scrape, client):
    client.get("/")
    exported = _exported_families(scrape)
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {_family(m) for e in exprs for m in METRIC.findall(e)}
    assert used and used <= exported, used - exported
    # Every metric of the site is on the dashboard.
    assert exported <= used, exported - used


def test_a_misspelt_metric_is_caught(scrape, client):
    assert "payments_checkout" not in _exported_families(scrape)
