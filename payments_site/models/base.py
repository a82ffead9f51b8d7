"""The declarative base: constraint naming convention, timestamps and opaque public ids."""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime

from sqlalchemy import DateTime, MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_ALPHABET = string.ascii_letters + string.digits

# Every id column is a PostgreSQL `integer`: no row has an id outside 1..ID_MAX, so a larger
# number from a client names nothing (and PostgreSQL would refuse to compare it).
ID_MAX = 2**31 - 1
# The moments a client may name (cursors, date filters), well inside datetime's own years
# 1..9999, so shifting one into any time zone or by a day never overflows.
EARLIEST_MOMENT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_MOMENT = datetime(9999, 1, 1, tzinfo=UTC)


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
