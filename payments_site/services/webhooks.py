"""The Stripe webhook inbox: receive (verify, store once, enqueue), process (a handler per type).

Receiving does no work beyond that, so Stripe gets its 200 in milliseconds. Processing runs in
the worker: each event is claimed with a conditional UPDATE (so two copies of a job never run
one event at the same time), its handler runs in one transaction, and a failure is rolled back
and recorded on the row with the time of the next attempt. Handlers re-fetch the object from
Stripe instead of trusting the payload, so late, duplicated or reordered events converge on
Stripe's current state.

A type with no handler is acknowledged and stored as `ignored`. Some are ignored on purpose
(IGNORED_ON_PURPOSE, with the reason logged for each delivery): for saved cards only the card
itself matters (`setup_intent.succeeded`, `payment_method.*`); a SetupIntent that failed, was
canceled or waits for 3-D Secure attached no card, so there is nothing to record, and the
customer saw the outcome in the page (Stripe.js `confirmSetup`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from flask import current_app
from sqlalchemy import CursorResult, Table, and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from payments_site import jobs, stripe_gateway
from payments_site.db import autocommit_connection
from payments_site.errors import DomainError, InvalidRequest, NotFound
from payments_site.extensions import db
from payments_site.models import User, WebhookEvent, utcnow
from payments_site.services import audit, disputes, methods, payments, refunds

log = logging.getLogger(__name__)

Event = dict[str, Any]
Handler = Callable[[Event], None]

HANDLERS: dict[str, Handler] = {}

# Event types that need no work, with why; they are stored as `ignored` and never get a handler.
IGNORED_ON_PURPOSE: dict[str, str] = {
    "setup_intent.setup_failed": "the SetupIntent attached no card (the customer saw the "
                                 "decline in the page); nothing to save",
    "setup_intent.requires_action": "3-D Secure is under way in the customer's browser; "
                                    "setup_intent.succeeded follows if it passes",
    "setup_intent.canceled": "a canceled SetupIntent attached no card; nothing to undo",
}

# After the n-th failed attempt the next one waits RETRY_DELAYS[n - 1] seconds; after
# WEBHOOK_MAX_ATTEMPTS (config, default 8) the event stays `failed` until an operator replays it.
RETRY_DELAYS = (30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600)
DEFAULT_MAX_ATTEMPTS = 8
# A claimed event whose worker died (SIGKILL, OOM, lost machine) is taken over after this
# (config WEBHOOK_PROCESSING_LEASE); longer than the RQ job timeout (300 s), so a slow but
# live job is never run twice at once.
DEFAULT_PROCESSING_LEASE = 600


def handles(*event_types: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as THE handler of these Stripe event types."""

    def register(handler: Handler) -> Handler:
        for event_type in event_types:
            if event_type in IGNORED_ON_PURPOSE:
                raise ValueError(f"{event_type} is ignored on purpose; remove it from "
                                 "IGNORED_ON_PURPOSE to handle it")
            if event_type in HANDLERS and HANDLERS[event_type] is not handler:
                raise ValueError(f"{event_type} already has a handler")
            HANDLERS[event_type] = handler
        return handler

    return register


def max_attempts() -> int:
    return int(current_app.config.get("WEBHOOK_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS))


def processing_lease() -> timedelta:
    return timedelta(seconds=int(current_app.config.get("WEBHOOK_PROCESSING_LEASE",
                                                        DEFAULT_PROCESSING_LEASE)))


def retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1])


# --- receiving -----------------------------------------------------------------------------

def receive_event(payload: bytes, signature_header: str | None) -> int | None:
    """Verify and store one delivery; the stored row's id, or None for a duplicate.

    Raises InvalidRequest (400) for a bad signature: nothing is stored. A database error
    propagates (5xx), so Stripe delivers the event again later.
    """
    try:
        event = stripe_gateway.verify_webhook(payload, signature_header)
    except stripe_gateway.SignatureInvalid as error:
        log.warning("webhook rejected: %s", error)
        raise InvalidRequest("The Stripe-Signature header is missing or invalid.",
                             param="Stripe-Signature") from error
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not isinstance(event_type, str) or \
            not 0 < len(event_id) <= 255 or not 0 < len(event_type) <= 100:
        raise InvalidRequest("The event has no valid id or type.")

    handled = event_type in HANDLERS
    now = utcnow()
    # Stored and marked queued in ONE statement, committed on its own (AUTOCOMMIT: no
    # BEGIN/COMMIT round trips; the row is durable when the INSERT returns); if the enqueue
    # below fails the mark is taken back and the sweeper queues the event later. The unique
    # event id decides in the INSERT itself (ON CONFLICT DO NOTHING): a redelivery, or a
    # concurrent copy, inserts nothing and gets no id back. Core, not an ORM object that
    # would only be flushed and thrown away.
    with autocommit_connection() as connection:
        row_id = connection.execute(
            _insert_new_event(connection.dialect.name), {
                "stripe_event_id": event_id, "type": event_type,
                "payload": payload.decode("utf-8"),
                "api_version": str(event.get("api_version") or "")[:32] or None,
                "status": "pending" if handled else "ignored", "attempts": 0,
                "received_at": now, "enqueued_at": now if handled else None,
                "processed_at": None if handled else now}).scalar()
    if row_id is None:
        log.info("webhook %s (%s) already received", event_id, event_type)
        return None
    if not handled:
        _log_ignored(event_id, event_type)
        return row_id
    if not jobs.process_webhook_event(row_id):
        db.session.execute(update(WebhookEvent).where(WebhookEvent.id == row_id)
                           .values(enqueued_at=None))
        db.session.commit()
    return row_id


def _log_ignored(event_id: str, event_type: str) -> None:
    reason = IGNORED_ON_PURPOSE.get(event_type)
    if reason:
        log.info("webhook %s (%s) ignored on purpose: %s", event_id, event_type, reason)
    else:
        log.info("webhook %s: no handler for event type %s; acknowledged and ignored",
                 event_id, event_type)


_INSERT_NEW_EVENT: dict[str, Any] = {}


def _insert_new_event(dialect: str) -> Any:
    """`INSERT … ON CONFLICT (stripe_event_id) DO NOTHING RETURNING id` in this SQL dialect
    (built once per dialect; the values are bound per call)."""
    statement = _INSERT_NEW_EVENT.get(dialect)
    if statement is None:
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        table = cast(Table, WebhookEvent.__table__)
        statement = _INSERT_NEW_EVENT[dialect] = insert(table).on_conflict_do_nothing(
            index_elements=[table.c.stripe_event_id]).returning(table.c.id)
    return statement


def enqueue_event(event_row_id: int) -> bool:
    """Queue processing; when Redis is down the row stays pending and the sweeper retries."""
    queued = jobs.process_webhook_event(event_row_id)
    if queued:
        db.session.execute(update(WebhookEvent).where(WebhookEvent.id == event_row_id)
                           .values(enqueued_at=utcnow()))
        db.session.commit()
    return queued


# --- processing ----------------------------------------------------------------------------

def _claimable(now: datetime, *, replay: bool) -> Any:
    """Statuses a worker may take: waiting or failed, or a claim whose worker died."""
    waiting = or_(WebhookEvent.status.in_(("pending", "failed")),
                  and_(WebhookEvent.status == "processing",
                       WebhookEvent.next_attempt_at <= now))
    if replay:
        return or_(waiting, WebhookEvent.status.in_(("processed", "ignored")))
    return waiting


def process_event(event_row_id: int, *, replay: bool = False) -> str:
    """Run the handler of one stored event once; returns the event's status afterwards.

    `replay` also re-runs an event already processed or ignored (handlers are idempotent).
    """
    now = utcnow()
    claimed = cast("CursorResult[Any]", db.session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.id == event_row_id, _claimable(now, replay=replay))
        .values(status="processing", attempts=WebhookEvent.attempts + 1,
                next_attempt_at=now + processing_lease()))).rowcount
    db.session.commit()
    row = db.session.get(WebhookEvent, event_row_id)
    if row is None:
        log.warning("webhook event row %s does not exist", event_row_id)
        return "missing"
    if not claimed:
        # Done already, or another worker holds it right now: nothing to do.
        return row.status

    stripe_event_id, event_type, attempts = row.stripe_event_id, row.type, row.attempts
    handler = HANDLERS.get(event_type)
    try:
        if handler is not None:
            handler(json.loads(row.payload))
        row = db.session.get_one(WebhookEvent, event_row_id)
        row.status = "processed" if handler is not None else "ignored"
        row.processed_at = utcnow()
        row.next_attempt_at = None
        row.last_error = None
        db.session.commit()
    except Exception as error:  # noqa: BLE001 (any failure is recorded and retried)
        # Whatever the handler wrote is undone; the failure is recorded on its own.
        db.session.rollback()
        return _record_failure(event_row_id, stripe_event_id, event_type, attempts, error)
    if handler is None:
        _log_ignored(stripe_event_id, event_type)
    return "processed" if handler is not None else "ignored"


def _record_failure(event_row_id: int, stripe_event_id: str, event_type: str, attempts: int,
                    error: Exception) -> str:
    exhausted = attempts >= max_attempts()
    next_attempt_at = None if exhausted else utcnow() + retry_delay(attempts)
    message = f"{error.__class__.__name__}: {error}"[:2000]
    log.warning("webhook %s (%s) failed on attempt %d%s: %s", stripe_event_id, event_type,
                attempts, "; giving up" if exhausted else "", message,
                exc_info=not isinstance(error, DomainError))
    db.session.execute(update(WebhookEvent).where(WebhookEvent.id == event_row_id).values(
        status="failed", last_error=message, next_attempt_at=next_attempt_at))
    db.session.commit()
    return "failed"


def replay_event(stripe_event_id: str, *, actor: User | None) -> WebhookEvent:
    """Re-process one stored event now, whatever its status (audit-logged)."""
    row = db.session.scalar(select(WebhookEvent)
                            .where(WebhookEvent.stripe_event_id == stripe_event_id))
    if row is None:
        raise NotFound("No such webhook event.")
    row_id = row.id
    outcome = process_event(row_id, replay=True)
    audit.record("webhook.replayed", actor=actor, stripe_event_id=stripe_event_id,
                 event_type=row.type, outcome=outcome)
    db.session.commit()
    return db.session.get_one(WebhookEvent, row_id)


def recent_events(*, status: str | None = None, before_id: int | None = None,
                  limit: int = 50) -> list[WebhookEvent]:
    """Newest first, optionally one status only; `before_id` pages back."""
    query = select(WebhookEvent).order_by(WebhookEvent.id.desc()).limit(limit)
    if status:
        query = query.where(WebhookEvent.status == status)
    if before_id is not None:
        query = query.where(WebhookEvent.id < before_id)
    return list(db.session.scalars(query))


# --- handlers: one per event type ------------------------------------------------------------

def _object(event: Event) -> dict[str, Any]:
    obj = event.get("data", {}).get("object")
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        raise ValueError("event has no data.object with an id")
    return obj


def _id_of(value: Any) -> str | None:
    """A Stripe reference, expanded (an object) or not (an id)."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


@handles("payment_intent.succeeded", "payment_intent.processing",
         "payment_intent.requires_action", "payment_intent.payment_failed",
         "payment_intent.canceled")
def on_payment_intent(event: Event) -> None:
    payments.sync_payment_intent(_object(event)["id"])


@handles("charge.succeeded", "charge.refunded")
def on_charge(event: Event) -> None:
    charge = _object(event)
    intent_id = _id_of(charge.get("payment_intent"))
    # The payment first, so a refund that arrives before `succeeded` finds it captured.
    if intent_id:
        payments.sync_payment_intent(intent_id)
    if event["type"] == "charge.refunded":
        refunds.sync_charge_refunds(charge["id"])


@handles("refund.created", "refund.updated", "refund.failed", "charge.refund.updated")
def on_refund(event: Event) -> None:
    refund = stripe_gateway.to_dict(stripe_gateway.retrieve_refund(_object(event)["id"]))
    intent_id = _id_of(refund.get("payment_intent"))
    if intent_id:
        payments.sync_payment_intent(intent_id)
    refunds.sync_refund_from_stripe(refund)


@handles("setup_intent.succeeded")
def on_setup_intent(event: Event) -> None:
    setup_intent = stripe_gateway.to_dict(
        stripe_gateway.retrieve_setup_intent(_object(event)["id"]))
    method_id = _id_of(setup_intent.get("payment_method"))
    if setup_intent.get("status") != "succeeded" or method_id is None:
        return
    _sync_payment_method(method_id)


@handles("payment_method.attached", "payment_method.detached", "payment_method.updated")
def on_payment_method(event: Event) -> None:
    _sync_payment_method(_object(event)["id"])


def _sync_payment_method(method_id: str) -> None:
    """Apply the card's CURRENT state: an attach and a detach delivered out of order agree."""
    try:
        method = stripe_gateway.to_dict(stripe_gateway.retrieve_payment_method(method_id))
    except stripe_gateway.ResourceMissing:
        methods.sync_payment_method_detached(method_id)
        return
    if _id_of(method.get("customer")):
        methods.sync_payment_method_attached(method)
    else:
        methods.sync_payment_method_detached(method_id)


@handles("charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed")
def on_dispute(event: Event) -> None:
    disputes.apply_dispute(_object(event)["id"])
