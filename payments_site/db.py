"""Units of work on the database: transactions, the customer lock, one-statement writes.

Services say where their transactions begin and end with the operations of this module: a
block of work committed together (`unit_of_work`), or one statement committed on its own
(`update_now`, `execute_committed`, `insert_unless_present`, `update_after_failure`). Every
difference between PostgreSQL and SQLite the app cares about is handled here, so no service
branches on the dialect.

One-statement writes run autocommitted when no transaction is open: one round trip instead
of BEGIN, the statement and COMMIT.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    CursorResult,
    Engine,
    Executable,
    Result,
    Table,
    bindparam,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from payments_site.extensions import db
from payments_site.models import User, utcnow

T = TypeVar("T")
Model = TypeVar("Model")


# --- transactions ----------------------------------------------------------------------------

@contextmanager
def unit_of_work(*, keep_loaded: bool = False) -> Iterator[Session]:
    """One transaction: what the block writes is committed when it ends, or rolled back (and
    the error raised again) if it raises.

    Whatever the session read since the last commit belongs to the same transaction, as with
    flaskr's one `db.commit()` at the end of a view. `keep_loaded`: the block's writes are
    all reflected in the objects the session holds (rows it inserted, values it set), so
    the commit need not expire them and their next use costs no SELECT.
    """
    current = db.session()
    try:
        yield current
        if keep_loaded:
            commit_keeping_loaded()
        else:
            current.commit()
    except BaseException:
        current.rollback()  # the block's writes, or a commit that failed (a unique key)
        raise


def commit_keeping_loaded() -> None:
    """Commit without expiring the objects the session holds.

    For a transaction whose every write the session already reflects (rows it just
    inserted, `update_now` writes that matched): nothing needs reloading, and a plain commit
    would cost a SELECT per object on its next use. Not after a write that matched nothing
    or that the session did not make.
    """
    current = db.session()
    current.expire_on_commit = False
    try:
        current.commit()
    finally:
        current.expire_on_commit = True


def finish_reading() -> None:
    """End the transaction that has only read so far, keeping what it loaded.

    The next transaction then begins with its first write. SQLite needs that: a transaction
    that has read cannot take the write lock once another writer committed after its read
    began (it fails instead of waiting).
    """
    commit_keeping_loaded()


def discard() -> None:
    """Throw away whatever the session has not committed (after a step that failed)."""
    db.session.rollback()


def lock_customer(user_id: int) -> None:
    """Take this customer's lock for the rest of the current unit of work.

    Concurrent checkouts and card changes of one customer take turns here, and each sees
    what the previous holder committed. The lock is the user's row: `SELECT … FOR NO KEY
    UPDATE` on PostgreSQL (it writes no new row version and does not block inserts that
    only reference the user), a no-op UPDATE on SQLite (which has no FOR UPDATE; it takes
    the database's write lock).
    """
    current = db.session()
    if current.get_bind().dialect.name == "postgresql":
        # Under READ COMMITTED every statement after the lock sees what the previous holder
        # committed: the transaction may have read before it.
        current.execute(_LOCK_USER_ROW, {"user_id": user_id})
    else:
        # A fresh transaction whose first statement takes the lock (see finish_reading).
        finish_reading()
        current.execute(_TOUCH_USER_ROW, {"user_id": user_id})


# Built once: every checkout and card change takes the lock with the same compiled statement.
_USERS = cast(Table, User.__table__)
_LOCK_USER_ROW = select(_USERS.c.id).where(_USERS.c.id == bindparam("user_id")) \
    .with_for_update(key_share=True)
_TOUCH_USER_ROW = update(_USERS).where(_USERS.c.id == bindparam("user_id")) \
    .values(id=_USERS.c.id)


def lock_row(obj: Model) -> Model:
    """Lock `obj`'s row for the rest of the unit of work (PostgreSQL; SQLite has one writer)
    and read it again as it is now."""
    state = inspect(obj)
    mapper = state.mapper
    keys = [column == value
            for column, value in zip(mapper.primary_key, state.identity or (), strict=True)]
    locked = db.session.scalar(select(mapper).where(*keys).with_for_update()
                               .execution_options(populate_existing=True))
    return cast(Model, locked)


def insert_loaded(model: type[Model], rows: list[dict[str, Any]]) -> list[Model]:
    """INSERT `rows` of `model` in the current unit of work, as one statement, and return
    them as objects the session holds, loaded: what the ORM's flush would give, for less.

    The statement RETURNs every column, so the objects hold what the database stored
    (defaults included), in the order of `rows`; using them costs no SELECT. Relationships
    are not set: give them with `set_committed_value`. For the hot path of checkout, where
    the unit-of-work flush of a payment and its items cost more than the statements.
    """
    table = cast(Table, inspect(model).local_table)
    current = db.session()
    # The values travel as parameters of one statement per table, built once: the same
    # SQL each time, so SQLAlchemy's compiled cache finds it without walking new values.
    result = current.execute(_insert_returning(table), rows[0] if len(rows) == 1 else rows)
    objects = []
    for row in result.mappings():
        obj = model(**{column.key: row[column] for column in table.c})
        make_transient_to_detached(obj)  # as if loaded: its values are the committed state
        current.add(obj)
        objects.append(obj)
    return objects


@functools.cache
def _insert_returning(table: Table) -> Executable:
    return insert(table).returning(*table.c, sort_by_parameter_order=True)


def update_rows(model: type[Any], *criteria: ColumnElement[bool], **values: Any) -> int:
    """UPDATE `model` SET `values` WHERE `criteria` in the current unit of work; how many rows
    it matched (a conditional UPDATE tells its caller whether it won).

    The objects the session holds are not touched: read them again after the commit.
    """
    result = db.session.execute(update(model).where(*criteria).values(**values)
                                .execution_options(synchronize_session=False))
    return rows_matched(result)


def update_committed(model: type[Any], *criteria: ColumnElement[bool], **values: Any) -> int:
    """`update_rows` as a unit of work of its own: committed on return."""
    with unit_of_work():
        return update_rows(model, *criteria, **values)


def rows_matched(result: Result[Any]) -> int:
    """Rows a conditional UPDATE/DELETE matched: how it tells which caller won."""
    return int(cast(CursorResult[Any], result).rowcount or 0)


# --- one statement, committed on its own -----------------------------------------------------

@contextmanager
def autocommit_connection() -> Iterator[Connection]:
    """A pooled connection whose every statement commits on its own: a one-statement write
    costs one round trip, with no BEGIN or COMMIT."""
    with db.engine.connect() as connection:
        yield connection.execution_options(isolation_level="AUTOCOMMIT")


def execute_committed(statement: Executable, read: Callable[[Result[Any]], T], *,
                      keep_loaded: Callable[[T], bool] = lambda _value: True,
                      params: dict[str, Any] | None = None) -> T:
    """Run one write (with `params`, if given) and commit it; returns `read(result)`, taken
    before the commit.

    With no transaction open in the session, it is one autocommitted statement on its own
    connection. (Nothing the session holds can conflict with it: it holds no locks and no
    uncommitted rows.) Inside an open transaction it runs there and commits that
    transaction, keeping what the session holds loaded when `keep_loaded(value)` says its
    writes are all reflected.
    """
    current = db.session()
    bind = current.get_bind()
    if not current.in_transaction() and isinstance(bind, Engine):
        with autocommit_connection() as connection:
            return read(connection.execute(statement, params))
    value = read(current.execute(statement, params))
    if keep_loaded(value):
        commit_keeping_loaded()
    else:
        current.commit()
    return value


def get_autocommitted(model: type[Model], ident: Any) -> Model | None:
    """`session.get(model, ident)`, leaving no transaction open behind it.

    With none open, the SELECT runs autocommitted (one round trip, no BEGIN) and the object
    stays loaded; the request's next statement starts a transaction of its own, as its
    first would have. Inside an open transaction it is a plain `session.get`.
    """
    current = db.session()
    if current.in_transaction() or not isinstance(current.get_bind(), Engine):
        return current.get(model, ident)
    current.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    try:
        return current.get(model, ident)
    finally:
        commit_keeping_loaded()  # ends the autocommit block: no COMMIT is sent


def update_now(obj: object, *criteria: ColumnElement[bool], **values: Any) -> bool:
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
    matched = execute_committed(statement, lambda result: rows_matched(result) > 0,
                                keep_loaded=bool)
    if matched:
        for key, value in values.items():
            set_committed_value(obj, key, value)
    return matched


def update_after_failure(obj: object, *criteria: ColumnElement[bool], **values: Any) -> bool:
    """After a step that failed: discard what it left uncommitted, then record the outcome on
    `obj`'s row with one conditional UPDATE committed on its own (`update_now`)."""
    discard()
    return update_now(obj, *criteria, **values)


def insert_unless_present(table: Table, key: Column[Any], values: dict[str, Any]) -> int | None:
    """`INSERT … ON CONFLICT (key) DO NOTHING RETURNING id`, autocommitted: the new row's id,
    or None when a row with this key exists (the unique key decides, in the INSERT itself).

    The row is durable when this returns.
    """
    with autocommit_connection() as connection:
        insert = postgresql_insert if connection.dialect.name == "postgresql" \
            else sqlite_insert
        statement = insert(table).on_conflict_do_nothing(index_elements=[key]) \
            .returning(table.c.id)
        row_id = connection.execute(statement, values).scalar()
    return None if row_id is None else int(row_id)
