"""Server-Timing splits a request's time into waiting for Stripe and our own work, per request;
creating apps leaves the process's logging configured once."""

from __future__ import annotations

import logging
import re

import pytest
from flask import Flask

from payments_site import create_app


@pytest.fixture
def timed_app(app: Flask) -> Flask:
    """A second app on the same database, Redis and emulator, with SERVER_TIMING on."""
    return create_app({**{k: v for k, v in app.config.items() if k.isupper()},
                       "SERVER_TIMING": True})


def _stripe_calls(response) -> int:
    match = re.search(r'stripe;dur=[0-9.]+;desc="(\d+) calls", app;dur=[0-9.]+$',
                      response.headers["Server-Timing"])
    assert match, response.headers["Server-Timing"]
    return int(match.group(1))


def test_each_request_counts_its_own_stripe_calls(timed_app, customer, api_token):
    client = timed_app.test_client()
    token = {"Authorization": f"Bearer {api_token(customer)}"}
    # The Stripe customer is created, then the SetupIntent: two calls.
    first = client.post("/api/payments/methods/setup-intent", headers=token)
    assert first.status_code == 201, first.get_json()
    assert _stripe_calls(first) == 2
    # The customer exists now: one call, counted from zero again.
    assert _stripe_calls(client.post("/api/payments/methods/setup-intent", headers=token)) == 1
    # A request that never calls Stripe, right after: nothing carried over.
    assert _stripe_calls(client.get("/healthz")) == 0


def test_without_server_timing_no_header_is_sent(client):
    assert "Server-Timing" not in client.get("/healthz").headers


def test_logging_is_configured_once_however_many_apps(app):
    root = logging.getLogger()
    handlers, factory = list(root.handlers), logging.getLogRecordFactory()
    create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "x"})
    create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "y"})
    assert root.handlers == handlers
    assert logging.getLogRecordFactory() is factory
    # Still redacted after the extra apps.
    record = logging.getLogRecordFactory()("x", logging.INFO, __file__, 1,
                                           "key sk_test_abc123", None, None)
    assert "abc123" not in record.getMessage()
