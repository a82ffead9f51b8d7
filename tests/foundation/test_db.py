"""db.py: a unit of work commits together or not at all; the customer lock serialises; the
inbox's insert is decided by its unique key."""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import pytest
from flask import Flask
from sqlalchemy import Table, create_engine, func, select, text
from sqlalchemy.exc import IntegrityError

from payments_site.db import (
    insert_unless_present,
    lock_customer,
    unit_of_work,
    update_after_failure,
)
from payments_site.extensions import db
from payments_site.models import Payment, Product, User, WebhookEvent, utcnow


def _count_elsewhere(app: Flask, sql: str) -> int:
    """A count as another connection sees it (committed data only)."""
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        with engine.connect() as connection:
            return int(connection.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()


def test_a_unit_of_work_commits_when_the_block_ends(app):
    with unit_of_work():
        db.session.add(Product(name="Tea", unit_amount=500, currency="usd"))
        db.session.flush()
        assert _count_elsewhere(app, "SELECT count(*) FROM products") == 0
    assert _count_elsewhere(app, "SELECT count(*) FROM products") == 1
    assert not db.session().in_transaction()


def test_a_unit_of_work_that_raises_writes_nothing(app):
    with pytest.raises(RuntimeError, match="half done"):
        with unit_of_work():
            db.session.add(Product(name="Tea", unit_amount=500, currency="usd"))
            db.session.flush()
            raise RuntimeError("half done")
    assert _count_elsewhere(app, "SELECT count(*) FROM products") == 0
    assert db.session.scalar(select(func.count()).select_from(Product)) == 0


def test_a_commit_that_fails_is_rolled_back_and_the_session_goes_on(app, customer):
    with pytest.raises(IntegrityError):
        with unit_of_work():
            db.session.add(User(email=customer.email, password_hash="x"))
    # Usable at once: no "rollback first" left behind.
    with unit_of_work():
        db.session.add(Product(name="Tea", unit_amount=500, currency="usd"))
    assert _count_elsewhere(app, "SELECT count(*) FROM users") == 1
    assert _count_elsewhere(app, "SELECT count(*) FROM products") == 1


def test_update_after_failure_drops_the_failed_work_and_keeps_the_outcome(app, customer):
    payment = Payment(user_id=customer.id, amount=1999, currency="usd", cart_hash="x" * 64)
    with unit_of_work():
        db.session.add(payment)
    db.session.add(Product(name="half-written", unit_amount=100, currency="usd"))
    db.session.flush()
    assert update_after_failure(payment, needs_reconcile=True) is True
    assert payment.needs_reconcile is True
    assert _count_elsewhere(app, "SELECT count(*) FROM products") == 0
    assert _count_elsewhere(app, "SELECT count(*) FROM payments WHERE needs_reconcile") == 1


def test_the_inbox_insert_is_decided_by_its_unique_key(app):
    table = cast(Table, WebhookEvent.__table__)
    now = utcnow()
    values = {"stripe_event_id": "evt_1", "type": "charge.succeeded", "payload": "{}",
              "api_version": None, "status": "pending", "attempts": 0, "received_at": now,
              "enqueued_at": None, "processed_at": None}
    first = insert_unless_present(table, table.c.stripe_event_id, values)
    assert isinstance(first, int)
    assert insert_unless_present(table, table.c.stripe_event_id, values) is None
    # Durable when it returns, with no transaction left open.
    assert not db.session().in_transaction()
    assert _count_elsewhere(app, "SELECT count(*) FROM webhook_events") == 1


def test_the_customer_lock_makes_a_second_unit_of_work_wait(app, customer):
    """While one unit of work holds the customer's lock, another for the same customer waits
    until the first has committed (and then sees what it wrote)."""
    user_id = customer.id
    db.session.commit()
    held, order = threading.Event(), []

    def first() -> None:
        with app.app_context():
            with unit_of_work():
                lock_customer(user_id)
                held.set()
                time.sleep(0.5)
                db.session.add(Product(name="first", unit_amount=100, currency="usd"))
                order.append("first commits")
            db.session.remove()

    def second(seen: list[Any]) -> None:
        with app.app_context():
            held.wait(5)
            with unit_of_work():
                lock_customer(user_id)
                order.append("second holds the lock")
                seen.append(db.session.scalar(select(Product.name)))
            db.session.remove()

    seen: list[Any] = []
    threads = [threading.Thread(target=first), threading.Thread(target=second, args=(seen,))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert order == ["first commits", "second holds the lock"]
    assert seen == ["first"]
