"""update_now: a conditional UPDATE, committed when it returns, that keeps the object current."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from payments_site.db import update_now
from payments_site.extensions import db
from payments_site.models import Payment, Product
from tests.helpers import statements_run


@pytest.fixture
def payment(customer: Any) -> Payment:
    row = Payment(user_id=customer.id, status="requires_payment_method", amount=1999,
                  currency="usd", cart_hash="x" * 64, description="1 × Mug")
    db.session.add(row)
    db.session.commit()
    db.session.refresh(row)
    return row


def _outside(url: str, payment_id: int) -> tuple[str, int]:
    """The row as another connection sees it (committed data only)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return tuple(connection.execute(text(
                "SELECT status, confirm_attempts FROM payments WHERE id = :id"),
                {"id": payment_id}).one())  # type: ignore[return-value]
    finally:
        engine.dispose()


def _statements(fn: Any) -> list[str]:
    with statements_run(db.engine) as seen:
        fn()
    return seen


def test_outside_a_transaction_it_is_one_committed_statement(app, payment):
    db.session.commit()  # no transaction open
    before = payment.updated_at
    seen = _statements(lambda: update_now(
        payment, Payment.status == "requires_payment_method",
        status="processing", confirm_attempts=1))
    assert len(seen) == 1 and seen[0].startswith("UPDATE payments")
    assert not db.session().in_transaction()
    # Committed: another connection sees it at once.
    assert _outside(app.config["SQLALCHEMY_DATABASE_URI"], payment.id) == ("processing", 1)
    # The object took the values (and a new updated_at) without reading the row back.
    assert _statements(lambda: (payment.status, payment.confirm_attempts)) == []
    assert payment.status == "processing" and payment.confirm_attempts == 1
    assert payment.updated_at > before


def test_a_guard_that_matches_nothing_changes_nothing(app, payment):
    db.session.commit()
    assert update_now(payment, Payment.status == "succeeded",
                      status="canceled") is False
    assert payment.status == "requires_payment_method"
    assert _outside(app.config["SQLALCHEMY_DATABASE_URI"], payment.id)[0] == \
        "requires_payment_method"


def test_inside_a_transaction_it_commits_that_transaction(app, payment, product):
    product.name = "Renamed in the same transaction"  # a pending write in the session
    db.session.flush()
    assert db.session().in_transaction()
    assert update_now(payment, status="processing") is True
    assert not db.session().in_transaction()
    db.session.expire_all()
    assert db.session.get(Product, product.id).name == "Renamed in the same transaction"
    assert db.session.scalar(select(Payment.status).where(Payment.id == payment.id)) == \
        "processing"


def test_the_row_changed_elsewhere_is_not_overwritten(app, payment):
    """The guard decides: a concurrent winner's value stays, and refresh shows it."""
    db.session.commit()
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    engine = create_engine(url)
    try:
        with engine.begin() as other:
            other.execute(text("UPDATE payments SET status = 'succeeded' WHERE id = :id"),
                          {"id": payment.id})
    finally:
        engine.dispose()
    assert update_now(payment, Payment.status != "succeeded",
                      status="failed") is False
    db.session.refresh(payment)
    assert payment.status == "succeeded"


def test_an_object_without_a_row_is_refused(app, customer):
    pending = Payment(user_id=customer.id, amount=1999, currency="usd", cart_hash="y" * 64)
    with pytest.raises(ValueError, match="no row yet"):
        update_now(pending, status="processing")
