"""Prometheus metrics: what the site counts and times, and their text at GET /metrics.

The official `prometheus_client` in multiprocess mode: with PROMETHEUS_MULTIPROC_DIR set
(before this module is first imported), each process — every gunicorn worker, every
`flask worker` — writes its counters to its own files in that directory, and a scrape of any
web process on the machine adds them all up. Without it (a lone `flask run`) the process
counts for itself. Recording a value writes to memory-mapped files only: no database or
Redis round trip is added to any request or job. What must be read from the database or
Redis (queue depths, failed emails) is read at scrape time (services/monitoring.py).

Label values are bounded: outcomes, statuses and operations are fixed words of this code,
currencies are ISO codes, webhook types are the ones the site knows (else `other`), routes
are URL rule templates, never raw paths, and no id, email or amount is ever a label.

For gunicorn, the server's `child_exit` hook calls `mark_process_dead(worker.pid)`, and its
start-up empties the directory (`reset_multiprocess_dir`), so a restart counts from zero.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

CHECKOUT_OUTCOMES = ("succeeded", "requires_action", "declined", "failed", "canceled")
WEBHOOK_OUTCOMES = ("processed", "ignored", "failed")
JOB_OUTCOMES = ("succeeded", "failed")
EMAIL_OUTCOMES = ("sent", "retrying", "failed")
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_CURRENCY = re.compile(r"[a-z]{3}")
OTHER = "other"

CHECKOUTS = Counter(
    "payments_checkouts_total",
    "Checkout attempts by how they ended (succeeded, requires_action, declined, failed, "
    "canceled) and currency.", ["outcome", "currency"])
CAPTURED = Counter(
    "payments_captured_minor_units_total",
    "Money captured (payments that succeeded), in the currency's minor units.", ["currency"])
REFUNDED = Counter(
    "payments_refunded_minor_units_total",
    "Money refunded (refunds that succeeded), in the currency's minor units.", ["currency"])
STRIPE_LATENCY = Histogram(
    "payments_stripe_request_duration_seconds",
    "Time of each Stripe API request (each attempt), by resource.method.", ["operation"],
    buckets=(0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0))
STRIPE_ERRORS = Counter(
    "payments_stripe_errors_total",
    "Stripe API requests that failed, by resource.method and the SDK's error class (declines "
    "included, as CardError).", ["operation", "error"])
STRIPE_RETRIES = Counter(
    "payments_stripe_retries_total",
    "Stripe API requests repeated after a retryable failure, by resource.method.",
    ["operation"])
WEBHOOKS_RECEIVED = Counter(
    "payments_webhooks_received_total",
    "Verified webhook deliveries, by event type (unknown types as `other`).", ["type"])
WEBHOOK_DUPLICATES = Counter(
    "payments_webhook_duplicates_total",
    "Verified deliveries of an event already stored (acknowledged, not processed again).")
WEBHOOK_VERIFICATION_FAILURES = Counter(
    "payments_webhook_verification_failures_total",
    "Webhook deliveries refused: missing or bad signature, outside the tolerance window.")
WEBHOOKS_PROCESSED = Counter(
    "payments_webhooks_processed_total",
    "Webhook events run by the worker, by outcome (processed, ignored, failed).",
    ["outcome"])
WEBHOOK_LAG = Histogram(
    "payments_webhook_lag_seconds",
    "From the event's creation at Stripe to its effect applied here.",
    buckets=(0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
             4 * 3600.0))
JOBS = Counter(
    "payments_jobs_total",
    "Worker job runs by queue and outcome (a failed run may be retried).", ["queue", "outcome"])
EMAILS = Counter(
    "payments_emails_total",
    "Email delivery attempts by outcome (sent, retrying, failed: gave up).", ["outcome"])
HTTP_LATENCY = Histogram(
    "payments_http_request_duration_seconds",
    "Time to answer a request, by method, route template and status class.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))


# --- recording ------------------------------------------------------------------------------

def currency_label(currency: str | None) -> str:
    code = (currency or "").lower()
    return code if _CURRENCY.fullmatch(code) else OTHER


def one_of(value: str, allowed: Iterable[str]) -> str:
    return value if value in allowed else OTHER


def checkout(outcome: str, currency: str) -> None:
    CHECKOUTS.labels(one_of(outcome, CHECKOUT_OUTCOMES), currency_label(currency)).inc()


def captured(amount: int, currency: str) -> None:
    CAPTURED.labels(currency_label(currency)).inc(max(amount, 0))


def refunded(amount: int, currency: str) -> None:
    REFUNDED.labels(currency_label(currency)).inc(max(amount, 0))


def stripe_request(operation: str, seconds: float) -> None:
    STRIPE_LATENCY.labels(operation).observe(seconds)


def stripe_error(operation: str, error_class: str) -> None:
    STRIPE_ERRORS.labels(operation, error_class).inc()


def stripe_retry(operation: str) -> None:
    STRIPE_RETRIES.labels(operation).inc()


def webhook_received(event_type: str, known_types: Iterable[str]) -> None:
    WEBHOOKS_RECEIVED.labels(one_of(event_type, known_types)).inc()


def webhook_duplicate() -> None:
    WEBHOOK_DUPLICATES.inc()


def webhook_verification_failed() -> None:
    WEBHOOK_VERIFICATION_FAILURES.inc()


def webhook_processed(outcome: str, lag_seconds: float | None) -> None:
    WEBHOOKS_PROCESSED.labels(one_of(outcome, WEBHOOK_OUTCOMES)).inc()
    if lag_seconds is not None and outcome == "processed":
        WEBHOOK_LAG.observe(max(lag_seconds, 0.0))


def job_finished(queue: str, outcome: str) -> None:
    JOBS.labels(queue, one_of(outcome, JOB_OUTCOMES)).inc()


def email_attempt(outcome: str) -> None:
    EMAILS.labels(one_of(outcome, EMAIL_OUTCOMES)).inc()


def http_request(method: str, route: str | None, status: int, seconds: float) -> None:
    HTTP_LATENCY.labels(method if method in _HTTP_METHODS else OTHER, route or "unmatched",
                        f"{status // 100}xx").observe(seconds)


# --- exposition -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Reading:
    """A gauge read at scrape time: name, help, label names and {label values: value}."""

    name: str
    documentation: str
    labels: tuple[str, ...]
    values: Mapping[tuple[str, ...], float]


class _Readings(Collector):
    def __init__(self, readings: Iterable[Reading]) -> None:
        self.readings = list(readings)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        for reading in self.readings:
            family = GaugeMetricFamily(reading.name, reading.documentation,
                                       labels=list(reading.labels))
            for labels, value in reading.values.items():
                family.add_metric(list(labels), value)
            yield family


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def exposition(readings: Iterable[Reading] = ()) -> bytes:
    """Every process's metrics on this machine (or this process's alone), then the
    readings, in Prometheus' text format."""
    path = multiprocess_dir()
    if path is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
        counted = generate_latest(registry)
    else:
        counted = generate_latest(REGISTRY)
    scraped = CollectorRegistry()
    scraped.register(_Readings(readings))
    return counted + generate_latest(scraped)


def mark_process_dead(pid: int) -> None:
    """For gunicorn's `child_exit(server, worker)`: a worker process has gone; its counters
    stay counted, its live gauges are dropped."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)


def reset_multiprocess_dir(path: str | os.PathLike[str] | None = None) -> None:
    """Empty the metrics directory before the processes that write to it start (a restart
    counts from zero, as Prometheus expects of a counter). Creates it if missing."""
    target = path or multiprocess_dir()
    if target is None:
        return
    directory = Path(target)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
