"""Fault injection: 5xx, 429, dropped connections, timeouts, and lost responses."""

from __future__ import annotations

import time

import pytest
import requests
import stripe

from tests.emulator.helpers import client


def _fault(url: str, **fault: object) -> None:
    requests.post(f"{url}/_config/faults", json=fault, timeout=5).raise_for_status()


@pytest.mark.parametrize(("status", "error"), [
    (500, stripe.APIError), (502, stripe.APIError), (503, stripe.APIError),
    (429, stripe.RateLimitError)])
def test_status_faults(emulator, status: int, error: type) -> None:
    """Injected 5xx give Stripe's api_error body; 429 gives rate_limit. Only `times` requests
    fail.

    https://docs.stripe.com/error-handling and https://docs.stripe.com/rate-limits
    """
    sc = client(emulator.url)
    _fault(emulator.url, method="POST", path_prefix="/v1/payment_intents", status=status,
           times=1)
    with pytest.raises(error) as exc:
        sc.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})
    assert exc.value.http_status == status
    if status == 429:
        assert exc.value.error.code == "rate_limit"
    else:
        assert exc.value.error.type == "api_error"
    assert sc.v1.payment_intents.list().data == []  # the failed request had no effect
    sc.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})  # times=1 used up


def test_retry_with_idempotency_key_creates_one_object(emulator) -> None:
    """The SDK retries a 500 with the same Idempotency-Key: exactly one PaymentIntent.

    https://docs.stripe.com/api/idempotent_requests
    """
    sc = client(emulator.url, retries=2)
    _fault(emulator.url, method="POST", path_prefix="/v1/payment_intents", status=500, times=2)
    pi = sc.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})
    assert pi.status == "requires_payment_method"
    assert [p.id for p in sc.v1.payment_intents.list().data] == [pi.id]


def test_dropped_connection(emulator) -> None:
    """status 0 closes the connection without a response (APIConnectionError).

    https://docs.stripe.com/error-handling#connection-errors
    """
    sc = client(emulator.url)
    _fault(emulator.url, path_prefix="/v1/customers", status=0)
    with pytest.raises(stripe.APIConnectionError):
        sc.v1.customers.create()
    assert sc.v1.customers.list().data == []


def test_delay_beyond_timeout(emulator) -> None:
    """A delay longer than the client's timeout is a timeout (APIConnectionError).

    https://docs.stripe.com/error-handling#connection-errors
    """
    sc = client(emulator.url, timeout=0.5)
    _fault(emulator.url, path_prefix="/v1/customers", status=503, delay_s=1.5)
    started = time.monotonic()
    with pytest.raises(stripe.APIConnectionError):
        sc.v1.customers.list()
    assert time.monotonic() - started < 1.4


def test_response_lost_after_commit(emulator) -> None:
    """`after: true`: the request takes effect, the response is lost; the retry with the
    same key gets the original object instead of a duplicate.

    https://docs.stripe.com/api/idempotent_requests
    """
    sc = client(emulator.url)
    _fault(emulator.url, method="POST", path_prefix="/v1/payment_intents", status=0,
           after=True)
    with pytest.raises(stripe.APIConnectionError):
        sc.v1.payment_intents.create(params={"amount": 500, "currency": "usd"},
                                     options={"idempotency_key": "lost-1"})
    assert len(sc.v1.payment_intents.list().data) == 1  # it did happen
    pi = sc.v1.payment_intents.create(params={"amount": 500, "currency": "usd"},
                                      options={"idempotency_key": "lost-1"})
    assert [p.id for p in sc.v1.payment_intents.list().data] == [pi.id]


def test_faults_filter_and_clear(emulator) -> None:
    """Faults match method and path prefix; DELETE /_config/faults clears them.

    https://docs.stripe.com/error-handling
    """
    sc = client(emulator.url)
    _fault(emulator.url, method="POST", path_prefix="/v1/refunds", status=500, times=5)
    sc.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})  # not matched
    sc.v1.refunds.list()  # GET: not matched
    requests.delete(f"{emulator.url}/_config/faults", timeout=5).raise_for_status()
    assert requests.get(f"{emulator.url}/_config/faults", timeout=5).json()["faults"] == []
    bad = requests.post(f"{emulator.url}/_config/faults", json={"status": 200}, timeout=5)
    assert bad.status_code == 400


def test_latency_with_jitter(emulator) -> None:
    """`status: null` with `delay_s` and `jitter_s`: every matching call succeeds after
    delay_s ± jitter_s (Stripe-like latency for the benchmarks), spread rather than fixed."""
    sc = client(emulator.url)
    _fault(emulator.url, path_prefix="/v1", status=None, delay_s=0.2, jitter_s=0.1, times=20)
    took = []
    for _ in range(8):
        started = time.monotonic()
        sc.v1.customers.list()
        took.append(time.monotonic() - started)
    assert all(0.1 <= t < 0.5 for t in took), took
    assert max(took) - min(took) > 0.01, took  # spread, not one fixed delay
    remaining = requests.get(f"{emulator.url}/_config/faults", timeout=5).json()
    assert remaining["faults"][0]["times"] == 12 and remaining["faults"][0]["jitter_s"] == 0.1


@pytest.mark.parametrize("fault", [
    {"delay_s": 0.1, "jitter_s": 0.2},     # would go below zero
    {"delay_s": 0.1, "jitter_s": -0.05},
    {"delay_s": 0.1, "jitter_s": "soon"},
])
def test_bad_jitter_is_refused(emulator, fault: dict[str, object]) -> None:
    response = requests.post(f"{emulator.url}/_config/faults", timeout=5,
                             json={"path_prefix": "/v1", "status": None, **fault})
    assert response.status_code == 400
    assert "jitter_s" in response.json()["error"]["message"]
    assert requests.get(f"{emulator.url}/_config/faults", timeout=5).json()["faults"] == []
