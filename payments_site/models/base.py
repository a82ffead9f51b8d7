"""The declarative base: constraint naming convention, timestamps and opaque public ids."""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    DateTime,
    Engine,
    Executable,
    MetaData,
    Result,
    inspect,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_ALPHABET = string.ascii_letters + string.digits
T = TypeVar("T")


def rows_matched(result: Result[Any]) -> int:
    """Rows a conditional UPDATE/DELETE matched: how it tells which caller won."""
    return int(cast(CursorResult[Any], result).rowcount or 0)


def commit_keeping_loaded(session: Session) -> None:
    """Commit without expiring the objects the session holds.

    For a transaction whose every write the session already reflects (rows it just
    inserted, `update_now` writes that matched):
    nothing needs reloading, and a plain commit would cost a SELECT per object on its next
    use. Not after a write that matched nothing or that the session did not make.
    """
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True


@contextmanager
def autocommit_connection(engine: Engine) -> Iterator[Connection]:
    """A pooled connection whose every statement commits on its own: a one-statement write
    costs one round trip, with no BEGIN or COMMIT."""
    with engine.connect() as connection:
        yield connection.execution_options(isolation_level="AUTOCOMMIT")


def execute_committed(session: Session, statement: Executable,
                      read: Callable[[Result[Any]], T], *,
                      keep_loaded: Callable[[T], bool] = lambda _value: True) -> T:
    """Run one write and commit it; returns `read(result)`, taken before the commit.

    With no transaction open in the session, it is one autocommitted statement on its own
    connection: one round trip instead of BEGIN, the statement and COMMIT. (Nothing the
    session holds can conflict with it: it holds no locks and no uncommitted rows.) Inside
    an open transaction it runs there and commits that transaction, keeping what the
    session holds loaded when `keep_loaded(value)` says its writes are all reflected.
    """
    bind = session.get_bind()
    if not session.in_transaction() and isinstance(bind, Engine):
        with autocommit_connection(bind) as connection:
            return read(connection.execute(statement))
    value = read(session.execute(statement))
    if keep_loaded(value):
        commit_keeping_loaded(session)
    else:
        session.commit()
    return value


def get_autocommitted(session: Session, model: type[T], ident: Any) -> T | None:
    """`session.get(model, ident)`, leaving no transaction open behind it.

    With none open, the SELECT runs autocommitted (one round trip, no BEGIN) and the object
    stays loaded; the request's next statement starts a transaction of its own, as its
    first would have. Inside an open transaction it is a plain `session.get`.
    """
    if session.in_transaction() or not isinstance(session.get_bind(), Engine):
        return session.get(model, ident)
    session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    try:
        return session.get(model, ident)
    finally:
        commit_keeping_loaded(session)  # ends the autocommit block: no COMMIT is sent


def update_now(session: Session, obj: Any, *criteria: ColumnElement[bool],
               **values: Any) -> bool:
    """UPDATE `obj`'s row SET `values` WHERE `criteria`, committed on return; True if it matched.

    A conditional write that decides something (who records an intent, who may confirm),
    run by `execute_committed`: autocommitted when no transaction is open, else in that
    transaction, which it commits. It is one Core statement: the ORM's bulk UPDATE would
    also evaluate the WHERE clause in Python against every object in the session, which
    costs more than the statement.
    When the row matched, `obj` takes the values as its state, so reading them needs no
    SELECT; when it did not, nothing on `obj` is changed (refresh it to see who won).
    `updated_at`, where the table has one, is set too.
    """
    state = inspect(obj)
    if state.identity is None:
        raise ValueError(f"{obj!r} has no row yet: flush it before update_now")
    table = state.mapper.local_table
    if "updated_at" in table.c and "updated_at" not in values:
        values["updated_at"] = utcnow()
    keys = [table.c[column.key] == value
            for column, value in zip(state.mapper.primary_key, state.identity, strict=True)]
    statement = update(table).where(*keys, *criteria).values(**values)
    # When it matched, what the transaction read is as current as the write.
    matched = execute_committed(session, statement, lambda result: rows_matched(result) > 0,
                                keep_loaded=bool)
    if matched:
        _take_values(obj, values)
    return matched


def _take_values(obj: Any, values: dict[str, Any]) -> None:
    for key, value in values.items():
        set_committed_value(obj, key, value)


def utcnow() -> datetime:
    return datetime.now(UTC)


def public_id(prefix: str) -> str:
    """An opaque id such as `pay_3kT9…`: 24 random base62 characters (~143 bits)."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(24))


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
