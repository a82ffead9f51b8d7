"""The database going away during checkout: no PaymentIntent at Stripe is left unrecorded.

PostgreSQL is made unreachable for real: new connections to the test database are refused
(`ALLOW_CONNECTIONS false`) and the open ones are ended (`pg_terminate_backend`), while the
checkout request is inside its Stripe call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import requests
from sqlalchemy.engine import make_url

from payments_site.extensions import db
from payments_site.models import Payment
from tests.harness.services import postgres_admin_url


class Outage:
    """Switches the test database off and on (PostgreSQL only)."""

    def __init__(self, database_url: str) -> None:
        self.name = make_url(database_url).database
        self.admin = psycopg.connect(postgres_admin_url(), autocommit=True)
        self.down = False

    def start(self) -> None:
        db.session.close()  # the test's own session holds no connection through the outage
        self.admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
        self.admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = %s AND pid <> pg_backend_pid()", (self.name,))
        self.down = True

    def end(self) -> None:
        self.admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')
        self.down = False
        # The pool's connections were ended by the server: start afresh.
        db.engine.dispose()
        db.session.remove()


@pytest.fixture
def outage(app: Any, database_url: str) -> Iterator[Outage]:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("needs PostgreSQL to end the app's connections from outside")
    switch = Outage(database_url)
    try:
        yield switch
    finally:
        if switch.down:
            switch.end()
        switch.admin.close()


def _checkout_in_background(client: Any, token: str, product_id: int) -> dict[str, Any]:
    answer: dict[str, Any] = {}

    def run() -> None:
        response = client.post("/api/payments/process",
                               headers={"Authorization": f"Bearer {token}"},
                               json={"items": [{"product_id": product_id, "quantity": 1}]})
        answer["status"] = response.status_code
        answer["body"] = response.get_data(as_text=True)

    thread = threading.Thread(target=run)
    thread.start()
    answer["thread"] = thread
    return answer


def _all_intents(sc: Any) -> list[Any]:
    """Every PaymentIntent Stripe holds (each test starts with an empty emulator)."""
    return list(sc.v1.payment_intents.list({"limit": 100}).data)


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_database_lost_while_stripe_creates_the_intent(app, client, customer, mug, api_token,
                                                       sc, emulator, outage, runner):
    """RELIABILITY 27: the database goes away while Stripe creates the PaymentIntent → the
    customer gets a 5xx, the payment row committed before the call names the intent, and
    once the database is back the operator's reconcile records it; still one intent."""
    token, product_id = api_token(customer), mug.id
    # Stripe creates the intent at once and answers 3 s later: the outage fits in between.
    requests.post(f"{emulator.url}/_config/faults", json={
        "method": "POST", "path_prefix": "/v1/payment_intents", "status": None,
        "delay_s": 3, "after": True, "times": 1}, timeout=5).raise_for_status()
    answer = _checkout_in_background(client, token, product_id)
    _wait_for(lambda: bool(_all_intents(sc)), 10, "the PaymentIntent at Stripe")
    outage.start()
    answer["thread"].join(timeout=30)
    outage.end()

    assert answer["status"] >= 500, answer["body"]
    assert "Traceback" not in answer["body"] and "psycopg" not in answer["body"]
    [payment] = db.session.query(Payment).all()
    [intent] = _all_intents(sc)
    assert intent.metadata["payment_id"] == payment.public_id

    result = runner.invoke(args=["payments", "reconcile"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    payment = db.session.query(Payment).one()
    assert payment.stripe_payment_intent_id == intent.id
    assert [i.id for i in _all_intents(sc)] == [intent.id]


def test_database_down_when_checkout_starts_calls_stripe_not_at_all(
        app, client, customer, mug, api_token, sc, outage):
    """RELIABILITY 27: with the database unreachable from the start the request fails
    before Stripe hears of it: no Stripe customer, no PaymentIntent."""
    token, product_id = api_token(customer), mug.id
    outage.start()
    try:
        response = client.post("/api/payments/process",
                               headers={"Authorization": f"Bearer {token}"},
                               json={"items": [{"product_id": product_id, "quantity": 1}]})
    finally:
        outage.end()
    assert response.status_code >= 500
    assert _all_intents(sc) == []
    assert list(sc.v1.customers.list({"limit": 100}).data) == []
    assert db.session.query(Payment).count() == 0
