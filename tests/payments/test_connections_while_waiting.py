"""No database connection is held while a checkout waits for Stripe.

At Stripe's real latency (hundreds of milliseconds per call) a checkout spends most of its
time waiting; if it held its pooled connection meanwhile, a node's pool (and PostgreSQL's
max_connections) would bound how many customers can pay at once. Here every PaymentIntent
call is held at the emulator (its delay fault) while the test counts the connections the
request's thread has checked out of the pool.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import event

from payments_site.extensions import db

DELAY_S = 1.0


class PoolWatch:
    """Connections checked out of the app's pool, per thread (from the pool's own events)."""

    def __init__(self) -> None:
        self.held: Counter[int] = Counter()
        self.lock = threading.Lock()

    def on_checkout(self, _dbapi: Any, record: Any, _proxy: Any) -> None:
        with self.lock:
            record.info["owner"] = threading.get_ident()
            self.held[threading.get_ident()] += 1

    def on_checkin(self, _dbapi: Any, record: Any) -> None:
        with self.lock:
            owner = record.info.pop("owner", None)
            if owner is not None:
                self.held[owner] -= 1

    def of(self, thread: threading.Thread) -> int:
        with self.lock:
            return self.held[thread.ident or 0]


@pytest.fixture
def pool_watch(app: Flask) -> Iterator[PoolWatch]:
    watch = PoolWatch()
    engine = db.engine
    event.listen(engine, "checkout", watch.on_checkout)
    event.listen(engine, "checkin", watch.on_checkin)
    yield watch
    event.remove(engine, "checkout", watch.on_checkout)
    event.remove(engine, "checkin", watch.on_checkin)


def _faults(emulator: Any) -> list[dict[str, Any]]:
    return list(requests.get(f"{emulator.url}/_config/faults", timeout=5).json()["faults"])


def _wait_for_calls(emulator: Any, arrived: int, times: int) -> None:
    """Until `arrived` of the `times` delayed calls reached the emulator (it is holding the
    last of them now, for DELAY_S)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        faults = _faults(emulator)
        left = faults[0]["times"] if faults else 0
        if times - left >= arrived:
            return
        time.sleep(0.01)
    raise AssertionError(f"{arrived} Stripe call(s) never reached the emulator")


def _held_during_calls(app: Flask, emulator: Any, pool_watch: PoolWatch, post: Any,
                       calls: int) -> tuple[list[int], Any]:
    """Start the request in a thread of its own; for each of its `calls` delayed Stripe
    calls, the connections that thread holds while the emulator holds the call."""
    requests.post(f"{emulator.url}/_config/faults", timeout=5, json={
        "path_prefix": "/v1/payment_intents", "status": None, "delay_s": DELAY_S,
        "times": calls}).raise_for_status()
    answer: dict[str, Any] = {}

    def run() -> None:
        with app.app_context():
            answer["response"] = post()

    worker = threading.Thread(target=run)
    worker.start()
    held = []
    for arrived in range(1, calls + 1):
        _wait_for_calls(emulator, arrived, calls)
        time.sleep(DELAY_S / 4)  # well inside the held call
        held.append(pool_watch.of(worker))
    worker.join(timeout=60)
    return held, answer.get("response")


def test_saved_card_checkout_holds_no_connection_while_stripe_answers(
        app: Flask, emulator: Any, pool_watch: PoolWatch, shopper: Any, customer: Any,
        mug: Any, make_card: Any) -> None:
    pm_id, mug_id = make_card(customer), mug.id  # read here: the request thread reads nothing

    def pay() -> Any:
        return shopper.post("/api/payments/process", json={
            "items": [{"product_id": mug_id, "quantity": 1}], "payment_method_id": pm_id},
            headers={"Idempotency-Key": "wait-saved-1"})

    held, response = _held_during_calls(app, emulator, pool_watch, pay, calls=2)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["payment"]["status"] == "succeeded"
    assert held == [0, 0]  # during the create and during the confirm


def test_new_card_checkout_holds_no_connection_while_stripe_answers(
        app: Flask, emulator: Any, pool_watch: PoolWatch, shopper: Any, mug: Any) -> None:
    mug_id = mug.id  # read here: the request thread reads nothing but the request's own

    def pay() -> Any:
        return shopper.post("/api/payments/process", json={
            "items": [{"product_id": mug_id, "quantity": 3}]},
            headers={"Idempotency-Key": "wait-new-1"})

    held, response = _held_during_calls(app, emulator, pool_watch, pay, calls=1)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["client_secret"]
    assert held == [0]


def test_the_watch_sees_a_connection_held_across_a_stripe_call(
        app: Flask, emulator: Any, pool_watch: PoolWatch, sc: Any) -> None:
    """The counter itself: a thread that keeps a transaction open across a Stripe call is
    seen holding its connection (what the checkout must never do)."""

    def hold_and_call() -> None:
        db.session.execute(db.text("SELECT 1"))  # a transaction (and its connection)
        sc.v1.payment_intents.create({"amount": 500, "currency": "usd"})
        db.session.rollback()
        db.session.remove()

    held, _ = _held_during_calls(app, emulator, pool_watch, hold_and_call, calls=1)
    assert held == [1]
