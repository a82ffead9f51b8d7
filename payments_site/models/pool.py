"""Checking pooled connections before use, without a round trip on every transaction.

SQLAlchemy's `pool_pre_ping` pings on every checkout, and a Session checks a connection out
for each transaction: a checkout that writes ahead of each Stripe call runs five or six
transactions, so it paid five or six extra round trips. Here a connection is pinged only
when it sat in the pool for `idle_seconds` or more. One that was checked in a moment ago was
working then; if the server dropped it since, its next statement fails, SQLAlchemy sees a
disconnect, and the whole pool is refreshed (the same one-request cost as without a ping).
Connections a quiet process has not used for a while are the ones a restart, a failover or
an idle timeout kills, and those are still pinged.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

CHECKED_IN_AT = "payments_site.checked_in_at"


def install_idle_ping(engine: Engine, idle_seconds: float) -> None:
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _remember_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in = record.info.get(CHECKED_IN_AT)
        if checked_in is None or time.monotonic() - checked_in < idle_seconds:
            return  # a new connection, or one in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                # Like pre_ping: drop every pooled connection older than now, reconnect.
                raise exc.InvalidatePoolError() from error
            raise
