"""Client Idempotency-Keys (API.md): same user + key + body within 24 h replays the response.

The database row is the only record: a unique (user, key) insert decides who runs the
request, and the same row keeps its answer. A first use costs that INSERT and one UPDATE; a
replay, the refused INSERT and one SELECT. (There is no copy of the answers in Redis: it cost
every first use two more round trips to save a replay one.) A request still running answers
409; the same key with a different body answers 422. Responses of 5xx are not kept, so the
client may retry.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from flask import current_app
from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from payments_site.db import (
    discard,
    execute_committed,
    rows_matched,
    unit_of_work,
    update_committed,
)
from payments_site.errors import IdempotencyInProgress, IdempotencyKeyReused
from payments_site.extensions import db
from payments_site.models import IdempotencyKey, utcnow

log = logging.getLogger(__name__)

Response = tuple[dict[str, Any], int]
# A request that has held its key this long without finishing is presumed dead (its process
# crashed); the next request with the same key may take over.
ABANDONED_AFTER = timedelta(minutes=2)


def request_hash(scope: str, payload: Mapping[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{scope}\n{canonical}".encode()).hexdigest()


def key_token(purpose: str, user_id: int, key: str) -> str:
    """What one user's key names for `purpose`, kept beside the work the key did (a
    checkout's attempt, a refund's request) so that the key run again finds that work:
    64 hex digits whatever the key's length, the same for the same user and key."""
    return hashlib.sha256(f"{purpose}\n{user_id}\n{key}".encode()).hexdigest()


def _claim(user_id: int, key: str, digest: str) -> int | Response:
    """Insert our claim on the key (its row id), or return what the existing claim says."""
    ttl = timedelta(seconds=int(current_app.config["IDEMPOTENCY_TTL"]))
    for _ in range(3):
        now = utcnow()
        row_id = _insert_claim(user_id, key, digest, now, now + ttl)
        if row_id is not None:
            return row_id
        existing = db.session.scalar(select(IdempotencyKey).where(
            IdempotencyKey.user_id == user_id, IdempotencyKey.key == key))
        if existing is None:
            continue
        if existing.expires_at <= now:
            with unit_of_work():
                db.session.execute(delete(IdempotencyKey).where(
                    IdempotencyKey.id == existing.id, IdempotencyKey.expires_at <= now))
            continue
        if existing.request_hash != digest:
            raise IdempotencyKeyReused(param="Idempotency-Key")
        if existing.status == "done" and existing.response_body is not None:
            return json.loads(existing.response_body), int(existing.response_status or 200)
        if existing.created_at <= now - ABANDONED_AFTER:
            existing_id = existing.id
            if update_committed(IdempotencyKey, IdempotencyKey.id == existing.id,
                                IdempotencyKey.status == "in_progress",
                                IdempotencyKey.created_at == existing.created_at,
                                created_at=now):
                return existing_id
        raise IdempotencyInProgress(param="Idempotency-Key")
    raise IdempotencyInProgress(param="Idempotency-Key")


# Built once; each request's values travel as parameters (the compiled statement is reused).
_KEYS = cast(Table, IdempotencyKey.__table__)
_INSERT_CLAIM = insert(_KEYS).returning(_KEYS.c.id)
_STORE_ANSWER = update(_KEYS).where(_KEYS.c.id == bindparam("row_id"))


def _insert_claim(user_id: int, key: str, digest: str, now: datetime,
                  expires_at: datetime) -> int | None:
    """INSERT the in-progress row, committed on return: its id, or None if (user, key) is
    taken. With no transaction open (the usual case: the caller was loaded autocommitted)
    it is one autocommitted statement; else it commits the open transaction, whose loaded
    objects stay loaded (only our claim was written)."""
    try:
        return execute_committed(_INSERT_CLAIM, lambda result: int(result.scalar_one()), params={
            "user_id": user_id, "key": key, "request_hash": digest, "status": "in_progress",
            "created_at": now, "expires_at": expires_at})
    except IntegrityError:
        discard()
        return None


def run_idempotent(scope: str, user_id: int, key: str | None, payload: Mapping[str, Any],
                   handler: Callable[[], Response]) -> Response:
    """Run `handler` once per (user, key); replays the stored (body, status) afterwards.

    `scope` names the route so one key cannot replay another route's response; `payload`
    is the request body the key is bound to. The handler answers errors as (body, status)
    too: answers below 500 (declines and validation included) are stored and replayed like
    successes; 5xx, 409 and 429 are not, so the client may retry with the same key.
    """
    if key is None:
        return handler()
    claim = _claim(user_id, key, request_hash(scope, payload))
    if isinstance(claim, tuple):
        return claim
    row_id = claim
    try:
        body, status = handler()
    except BaseException:
        _release(row_id)
        raise
    if status >= 500 or status in (409, 429):
        _release(row_id)
        return body, status
    _store(row_id, body, status)
    return body, status


def _store(row_id: int, body: dict[str, Any], status: int) -> None:
    discard()  # whatever the handler left open must not ride along
    # Nothing is open now: one autocommitted statement, no BEGIN/COMMIT round trips.
    execute_committed(_STORE_ANSWER, lambda _result: None, params={
        "row_id": row_id, "status": "done", "response_status": status,
        "response_body": json.dumps(body)})


def _release(row_id: int) -> None:
    discard()
    with unit_of_work():
        db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == row_id))


def purge_expired() -> int:
    """Delete keys past their 24 h; returns how many (the worker's sweeper calls it)."""
    with unit_of_work():
        result = db.session.execute(delete(IdempotencyKey).where(
            IdempotencyKey.expires_at <= utcnow()))
    return rows_matched(result)
