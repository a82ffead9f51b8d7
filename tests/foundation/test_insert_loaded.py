"""insert_loaded: rows inserted by one statement, held by the session as loaded objects."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from payments_site.db import insert_loaded, unit_of_work
from payments_site.extensions import db
from payments_site.models import Payment, PaymentItem
from tests.helpers import statements_run


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    """What another connection sees (committed data only)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql))]
    finally:
        engine.dispose()


def _payment_values(user_id: int, **extra: Any) -> dict[str, Any]:
    return {"user_id": user_id, "amount": 1999, "currency": "usd", "cart_hash": "c" * 64,
            "description": "1 × Mug", **extra}


def test_one_statement_per_table_and_the_objects_are_loaded(app, customer, product):
    with statements_run(db.engine) as seen, unit_of_work(keep_loaded=True):
        [payment] = insert_loaded(Payment, [_payment_values(customer.id)])
        items = insert_loaded(PaymentItem, [
            {"payment_id": payment.id, "product_id": product.id, "name": name,
             "quantity": quantity, "unit_amount": 1999}
            for name, quantity in (("first", 1), ("second", 2), ("third", 3))])
    inserts = [s for s in seen if s.lstrip().upper().startswith("INSERT")]
    # PostgreSQL: one statement per table. SQLite cannot promise RETURNING's order for a
    # multi-row INSERT, so SQLAlchemy inserts the items one by one there.
    assert len(inserts) == (2 if db.engine.dialect.name == "postgresql" else 4), seen
    # Column defaults are applied and come back: nothing needs reading again.
    with statements_run(db.engine) as after:
        assert payment.public_id.startswith("pay_") and len(payment.public_id) == 28
        assert payment.status == "requires_payment_method" and payment.amount_refunded == 0
        assert payment.created_at is not None and payment.created_at.tzinfo is not None
        assert [(i.name, i.quantity) for i in items] == [("first", 1), ("second", 2),
                                                       ("third", 3)]
        assert all(i.id and i.payment_id == payment.id for i in items)
    assert after == []
    # They are the session's objects for those rows, and the rows were committed.
    assert db.session.get(Payment, payment.id) is payment
    stored = _rows(app.config["SQLALCHEMY_DATABASE_URI"],
                   f"SELECT public_id, amount FROM payments WHERE id = {payment.id}")
    assert stored == [(payment.public_id, 1999)]
    assert _rows(app.config["SQLALCHEMY_DATABASE_URI"],
                 f"SELECT name FROM payment_items WHERE payment_id = {payment.id} "
                 "ORDER BY id") == [("first",), ("second",), ("third",)]


def test_a_failed_unit_of_work_keeps_none_of_its_rows(app, customer):
    with pytest.raises(RuntimeError), unit_of_work():
        insert_loaded(Payment, [_payment_values(customer.id)])
        raise RuntimeError("the step after the insert failed")
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 0


def test_a_refused_row_inserts_nothing(app, customer):
    """A row the database refuses (here a zero amount, `amount_positive`) raises, and the unit
    of work keeps none of the statement's rows."""
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), unit_of_work():
        insert_loaded(Payment, [_payment_values(customer.id, cart_hash="a" * 64),
                                _payment_values(customer.id, amount=0)])
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 0
