"""The Stripe webhook inbox: receive (verify, store once, enqueue), process (a handler per type).

Receiving does no work beyond that, so Stripe gets its 200 in milliseconds. Processing runs in
the worker: each event is claimed with a conditional UPDATE (so two copies of a job never run
one event at the same time), its handler runs in one transaction, and a failure is rolled back
and recorded on the row with the time of the next attempt. Handlers re-fetch the object from
Stripe instead of trusting the payload, so late, duplicated or reordered events converge on
Stripe's current state.

An event nobody can apply is `ignored` too, with its reason, after one re-check
(UNAPPLIABLE): its object does not exist at Stripe (`ResourceMissing`: another account's
event, a deleted test object), or it is a dispute on a charge of no payment of ours. Retrying
those for hours would only bury the events that do need a person.

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
from sqlalchemy import ColumnElement, Table, and_, or_, select

from payments_site import jobs, metrics, stripe_gateway
from payments_site.db import discard, insert_unless_present, unit_of_work, update_committed
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
# An event whose handler found nothing to apply it to is tried this many times (the first run
# and one re-check, RETRY_DELAYS[0] later: the object may have been a moment from existing),
# then stored as `ignored` with the reason.
UNAPPLIABLE_ATTEMPTS = 2
UNAPPLIABLE: dict[type[Exception], str] = {
    stripe_gateway.ResourceMissing: "Stripe has no such object (resource_missing): it is "
                                    "not in this account, or it was deleted",
    disputes.DisputedPaymentUnknown: "the dispute is on a charge of no payment of ours",
}
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
        metrics.webhook_verification_failed()
        log.warning("webhook rejected: %s", error)
        raise InvalidRequest("The Stripe-Signature header is missing or invalid.",
                             param="Stripe-Signature") from error
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not isinstance(event_type, str) or \
            not 0 < len(event_id) <= 255 or not 0 < len(event_type) <= 100:
        raise InvalidRequest("The event has no valid id or type.")

    handled = event_type in HANDLERS
    metrics.webhook_received(event_type, KNOWN_TYPES)
    now = utcnow()
    # Stored and marked queued in ONE statement, committed on its own (AUTOCOMMIT: no
    # BEGIN/COMMIT round trips; the row is durable when the INSERT returns); if the enqueue
    # below fails the mark is taken back and the sweeper queues the event later. The unique
    # event id decides in the INSERT itself (ON CONFLICT DO NOTHING): a redelivery, or a
    # concurrent copy, inserts nothing and gets no id back. Core, not an ORM object that
    # would only be flushed and thrown away.
    table = cast(Table, WebhookEvent.__table__)
    row_id = insert_unless_present(table, table.c.stripe_event_id, {
        "stripe_event_id": event_id, "type": event_type, "payload": payload.decode("utf-8"),
        "api_version": str(event.get("api_version") or "")[:32] or None,
        "status": "pending" if handled else "ignored", "attempts": 0,
        "reason": None if handled else _ignored_reason(event_type),
        "received_at": now, "enqueued_at": now if handled else None,
        "processed_at": None if handled else now})
    if row_id is None:
        metrics.webhook_duplicate()
        log.info("webhook %s (%s) already received", event_id, event_type)
        return None
    if not handled:
        _log_ignored(event_id, event_type)
        return row_id
    if not jobs.process_webhook_event(row_id):
        update_committed(WebhookEvent, WebhookEvent.id == row_id, enqueued_at=None)
    return row_id


def _ignored_reason(event_type: str) -> str:
    return IGNORED_ON_PURPOSE.get(event_type, "no handler for this event type")[:500]


def _log_ignored(event_id: str, event_type: str) -> None:
    reason = IGNORED_ON_PURPOSE.get(event_type)
    if reason:
        log.info("webhook %s (%s) ignored on purpose: %s", event_id, event_type, reason)
    else:
        log.info("webhook %s: no handler for event type %s; acknowledged and ignored",
                 event_id, event_type)


def enqueue_event(event_row_id: int) -> bool:
    """Queue processing; when Redis is down the row stays pending and the sweeper retries."""
    queued = jobs.process_webhook_event(event_row_id)
    if queued:
        update_committed(WebhookEvent, WebhookEvent.id == event_row_id, enqueued_at=utcnow())
    return queued


# --- processing ----------------------------------------------------------------------------

def _claimable(now: datetime, *, replay: bool) -> ColumnElement[bool]:
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
    claimed = update_committed(
        WebhookEvent, WebhookEvent.id == event_row_id, _claimable(now, replay=replay),
        status="processing", attempts=WebhookEvent.attempts + 1,
        next_attempt_at=now + processing_lease())
    row = db.session.get(WebhookEvent, event_row_id)
    if row is None:
        log.warning("webhook event row %s does not exist", event_row_id)
        return "missing"
    if not claimed:
        # Done already, or another worker holds it right now: nothing to do.
        return row.status

    stripe_event_id, event_type, attempts = row.stripe_event_id, row.type, row.attempts
    handler = HANDLERS.get(event_type)
    event = json.loads(row.payload)
    try:
        with unit_of_work():
            if handler is not None:
                handler(event)
            row = db.session.get_one(WebhookEvent, event_row_id)
            row.status = "processed" if handler is not None else "ignored"
            row.reason = None if handler is not None else _ignored_reason(event_type)
            row.processed_at = utcnow()
            row.next_attempt_at = None
            row.last_error = None
    except tuple(UNAPPLIABLE) as error:
        reason = next(text for kind, text in UNAPPLIABLE.items() if isinstance(error, kind))
        if attempts >= UNAPPLIABLE_ATTEMPTS:
            return _ignore_unappliable(event_row_id, stripe_event_id, event_type, reason,
                                       error)
        return _record_failure(event_row_id, stripe_event_id, event_type, attempts, error)
    except Exception as error:  # noqa: BLE001 (any failure is recorded and retried)
        # Whatever the handler left uncommitted is rolled back; the failure is recorded on
        # its own.
        metrics.webhook_processed("failed", None)
        return _record_failure(event_row_id, stripe_event_id, event_type, attempts, error)
    if handler is None:
        _log_ignored(stripe_event_id, event_type)
    outcome = "processed" if handler is not None else "ignored"
    metrics.webhook_processed(outcome, _lag_seconds(event))
    return outcome


def _lag_seconds(event: Event) -> float | None:
    """Seconds from the event's creation at Stripe (`created`, Unix time) until now."""
    created = event.get("created") if isinstance(event, dict) else None
    if not isinstance(created, int) or isinstance(created, bool):
        return None
    return utcnow().timestamp() - created


def _record_failure(event_row_id: int, stripe_event_id: str, event_type: str, attempts: int,
                    error: Exception) -> str:
    exhausted = attempts >= max_attempts()
    next_attempt_at = None if exhausted else utcnow() + retry_delay(attempts)
    message = f"{error.__class__.__name__}: {error}"[:2000]
    log.warning("webhook %s (%s) failed on attempt %d%s: %s", stripe_event_id, event_type,
                attempts, "; giving up" if exhausted else "", message,
                exc_info=not isinstance(error, DomainError))
    update_committed(WebhookEvent, WebhookEvent.id == event_row_id, status="failed",
                     last_error=message, next_attempt_at=next_attempt_at)
    return "failed"


def _ignore_unappliable(event_row_id: int, stripe_event_id: str, event_type: str,
                        reason: str, error: Exception) -> str:
    """Stop retrying an event nobody can apply: `ignored`, with why (shown to admins)."""
    discard()
    log.warning("webhook %s (%s) ignored after a re-check: %s", stripe_event_id, event_type,
                reason)
    update_committed(WebhookEvent, WebhookEvent.id == event_row_id, status="ignored",
                     reason=reason[:500],
                     last_error=f"{error.__class__.__name__}: {error}"[:2000],
                     next_attempt_at=None, processed_at=utcnow())
    return "ignored"


def replay_event(stripe_event_id: str, *, actor: User | None) -> WebhookEvent:
    """Re-process one stored event now, whatever its status (audit-logged)."""
    row = db.session.scalar(select(WebhookEvent)
                            .where(WebhookEvent.stripe_event_id == stripe_event_id))
    if row is None:
        raise NotFound("No such webhook event.")
    row_id, event_type = row.id, row.type
    outcome = process_event(row_id, replay=True)
    with unit_of_work():
        audit.record("webhook.replayed", actor=actor, stripe_event_id=stripe_event_id,
                     event_type=event_type, outcome=outcome)
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

@handles("payment_intent.succeeded", "payment_intent.processing",
         "payment_intent.requires_action", "payment_intent.payment_failed",
         "payment_intent.canceled")
def on_payment_intent(event: Event) -> None:
    payments.sync_payment_intent(stripe_gateway.event_object_id(event))


@handles("charge.succeeded", "charge.refunded")
def on_charge(event: Event) -> None:
    charge = stripe_gateway.event_charge(event)
    # The payment first, so a refund that arrives before `succeeded` finds it captured.
    if charge.payment_intent_id:
        payments.sync_payment_intent(charge.payment_intent_id)
    if event["type"] == "charge.refunded":
        refunds.sync_charge_refunds(charge.id)


@handles("refund.created", "refund.updated", "refund.failed", "charge.refund.updated")
def on_refund(event: Event) -> None:
    refund = stripe_gateway.retrieve_refund(stripe_gateway.event_object_id(event))
    if refund.payment_intent_id:
        payments.sync_payment_intent(refund.payment_intent_id)
    refunds.sync_refund_from_stripe(refund)


@handles("setup_intent.succeeded")
def on_setup_intent(event: Event) -> None:
    setup_intent = stripe_gateway.retrieve_setup_intent(stripe_gateway.event_object_id(event))
    if setup_intent.status == "succeeded" and setup_intent.payment_method_id is not None:
        methods.sync_payment_method(setup_intent.payment_method_id)


@handles("payment_method.attached", "payment_method.detached", "payment_method.updated")
def on_payment_method(event: Event) -> None:
    methods.sync_payment_method(stripe_gateway.event_object_id(event))


@handles("charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed")
def on_dispute(event: Event) -> None:
    disputes.apply_dispute(stripe_gateway.event_object_id(event))


# The event types counted by name in the metrics (any other type is counted as `other`).
KNOWN_TYPES = frozenset(HANDLERS) | frozenset(IGNORED_ON_PURPOSE)
