"""Keyset paging over payments on (created_at, id): one cursor format for every list of them.

A cursor names the row a page ended on; the next page holds the rows after it in the list's
order. It is opaque to clients (URL-safe base64 of the row's timestamp and id) and checked
when read: a cursor that does not decode, or names a moment or an id no row can have (year 1,
an id beyond the id column's range), is the client's error (400), never a 500.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, or_

from payments_site.errors import InvalidRequest
from payments_site.models import EARLIEST_MOMENT, ID_MAX, LATEST_MOMENT, Payment

PageKey = tuple[datetime, int]


def encode_cursor(payment: Payment) -> str:
    raw = f"{payment.created_at.astimezone(UTC).isoformat()}|{payment.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(token: str, *, param: str, message: str = "The cursor is invalid.") -> PageKey:
    """The (created_at, id) a cursor names; InvalidRequest naming `param` if it names none."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        stamp, _, ident = raw.partition("|")
        at = datetime.fromisoformat(stamp)
        number = int(ident) if ident.isascii() and ident.isdigit() else 0
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise InvalidRequest(message, param=param) from error
    # Compared as given (no shift to UTC, which overflows near year 1 or 9999).
    if at.tzinfo is None or not EARLIEST_MOMENT <= at <= LATEST_MOMENT or \
            not 1 <= number <= ID_MAX:
        raise InvalidRequest(message, param=param)
    return at.astimezone(UTC), number


def older_than(key: PageKey) -> ColumnElement[bool]:
    """Payments listed after `key` newest first."""
    at, ident = key
    return or_(Payment.created_at < at, and_(Payment.created_at == at, Payment.id < ident))


def newer_than(key: PageKey) -> ColumnElement[bool]:
    """Payments listed before `key` newest first."""
    at, ident = key
    return or_(Payment.created_at > at, and_(Payment.created_at == at, Payment.id > ident))
