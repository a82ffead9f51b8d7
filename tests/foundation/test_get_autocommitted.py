"""get_autocommitted: the request's user loaded without a BEGIN, and no autocommit left behind."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, text, update

from payments_site.db import get_autocommitted
from payments_site.extensions import db
from payments_site.models import User
from tests.helpers import statements_run


def _in_transaction_on_server(connection: Any) -> bool:
    """Whether the DBAPI connection that ran a statement had a transaction open for it."""
    raw = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        return not raw.autocommit
    return raw.isolation_level is not None  # pysqlite: None is autocommit


def _watch(fn: Any) -> list[tuple[str, bool]]:
    """(statement, ran inside a transaction) for each statement `fn` runs."""
    with statements_run(db.engine, lambda connection, statement: (
            statement.split()[0], _in_transaction_on_server(connection))) as seen:
        fn()
    return seen


def _name_elsewhere(app: Any, user_id: int) -> str:
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        with engine.connect() as connection:
            return str(connection.execute(text("SELECT name FROM users WHERE id = :id"),
                                          {"id": user_id}).scalar_one())
    finally:
        engine.dispose()


def test_outside_a_transaction_it_loads_with_one_autocommitted_select(app, customer):
    user_id = customer.id
    db.session.commit()
    db.session.expunge_all()
    loaded: list[Any] = []
    seen = _watch(lambda: loaded.append(get_autocommitted(User, user_id)))
    assert seen == [("SELECT", False)]
    assert not db.session().in_transaction()
    user = loaded[0]
    # Loaded, not expired: reading it costs nothing.
    assert _watch(lambda: (user.email, user.name)) == []
    assert user.email == "customer@example.com"


def test_the_next_write_is_in_a_transaction_again(app, customer):
    """Autocommit ends with the load: a later write can still be rolled back."""
    user_id = customer.id
    db.session.commit()
    db.session.expunge_all()
    get_autocommitted(User, user_id)
    seen = _watch(lambda: db.session.execute(
        update(User).where(User.id == user_id).values(name="Not kept")))
    assert seen == [("UPDATE", True)]
    db.session.rollback()
    assert _name_elsewhere(app, user_id) == "Jane Customer"


def test_inside_a_transaction_it_is_a_plain_get(app, customer, make_user):
    user_id = customer.id
    other = make_user("other@example.com")
    db.session.commit()
    db.session.get(User, other.id)  # opens a transaction
    db.session.expire_all()
    seen = _watch(lambda: get_autocommitted(User, user_id))
    assert seen == [("SELECT", True)]
    assert db.session().in_transaction()


def test_an_unknown_id_is_none_and_leaves_nothing_open(app):
    db.session.commit()
    assert get_autocommitted(User, 987654) is None
    assert not db.session().in_transaction()
