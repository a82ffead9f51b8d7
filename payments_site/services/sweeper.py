"""The sweeper: finds work whose job was lost (Redis down, worker killed) and queues it again.

Every worker process runs `run_sweep` every SWEEP_INTERVAL seconds from a small background
thread (`start_periodic_sweeper`); a Redis lock makes it one sweep per interval across all
workers. A thread rather than a self-rescheduling RQ job: a scheduled job is stored in the very
Redis whose loss the sweeper exists to survive, and one lost or failed run would end the chain;
a loop in the worker's job loop would wait behind long jobs and RQ's 400 s idle dequeue.
Everything the sweeper queues is safe to run twice, so an extra sweep costs only a lookup.

Also here: `reconcile_payments`, the operator's "re-read recent payments from Stripe" (and
older ones Stripe refunded or saw disputed recently).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis
from flask import Flask
from sqlalchemy import and_, exists, or_, select

from payments_site import jobs, stripe_gateway
from payments_site.db import discard
from payments_site.errors import DomainError, ProviderUnavailable
from payments_site.extensions import db
from payments_site.models import (
    OutboundEmail,
    Payment,
    Receipt,
    Refund,
    User,
    WebhookEvent,
    utcnow,
)
from payments_site.queues import get_redis
from payments_site.services import (
    checkout,
    disputes,
    emails,
    fulfilment,
    idempotency,
    overview,
    receipts,
    refunds,
    webhooks,
)
from payments_site.services import payments as payments_service

log = logging.getLogger(__name__)

# A fresh event's own job normally runs within milliseconds; only older ones are the sweeper's.
WEBHOOK_GRACE = timedelta(seconds=10)
# Fulfilment jobs get a little longer before a missing receipt counts as lost; after a week
# a payment with no receipt needs a person, not another automatic attempt every sweep.
RECEIPT_GRACE = timedelta(minutes=2)
RECEIPT_WINDOW = timedelta(days=7)
BATCH = 500
LOCK_KEY = "payments_site:sweeper-lock"


# --- webhook events ----------------------------------------------------------------------------

def due_webhook_events(now: datetime | None = None, *, everything: bool = False,
                       limit: int = BATCH) -> list[int]:
    """Ids of stored events that should be (re)processed now, oldest first.

    Due: pending past the grace period (Redis was down, or the job was lost), failed with
    its next attempt time passed, and claims whose worker died (lease expired).
    `everything` (operators: `flask webhooks retry-failed`) also takes failed events
    whose retry is not due yet or that ran out of attempts, and fresh pending ones.
    """
    now = now or utcnow()
    if everything:
        due = or_(WebhookEvent.status.in_(("pending", "failed")),
                  and_(WebhookEvent.status == "processing",
                       WebhookEvent.next_attempt_at <= now))
    else:
        due = or_(
            and_(WebhookEvent.status == "pending", WebhookEvent.received_at <= now - WEBHOOK_GRACE),
            and_(WebhookEvent.status.in_(("failed", "processing")),
                 WebhookEvent.next_attempt_at.is_not(None), WebhookEvent.next_attempt_at <= now))
    query = select(WebhookEvent.id).where(due).order_by(WebhookEvent.id).limit(limit)
    return list(db.session.scalars(query))


def sweep_webhook_events(now: datetime | None = None, *, everything: bool = False) -> int:
    """Queue every due webhook event again; returns how many were queued."""
    queued = 0
    for event_id in due_webhook_events(now, everything=everything):
        if jobs.waiting(jobs.webhook_job_id(event_id)):
            continue
        if not webhooks.enqueue_event(event_id):
            break  # Redis is down: the next sweep tries again
        queued += 1
    if queued:
        log.info("sweeper queued %d webhook event(s)", queued)
    return queued


# --- the other kinds of work -------------------------------------------------------------------

def sweep_pending_emails() -> int:
    return emails.requeue_pending_emails()


def sweep_pending_refunds() -> int:
    return refunds.resubmit_stale_refunds()


def sweep_missing_receipts(now: datetime | None = None) -> int:
    """Queue fulfilment again for succeeded payments and refunds that have no receipt yet."""
    now = now or utcnow()
    window = and_(Payment.succeeded_at >= now - RECEIPT_WINDOW,
                  Payment.succeeded_at <= now - RECEIPT_GRACE)
    payments = db.session.scalars(
        select(Payment).where(
            Payment.status == "succeeded", window,
            ~exists().where(Receipt.payment_id == Payment.id, Receipt.series == "receipt"))
        .order_by(Payment.id).limit(BATCH)).all()
    refunds = db.session.scalars(
        select(Refund).where(
            Refund.status == "succeeded",
            Refund.updated_at >= now - RECEIPT_WINDOW, Refund.updated_at <= now - RECEIPT_GRACE,
            ~exists().where(Receipt.refund_id == Refund.id, Receipt.series == "refund_note"))
        .order_by(Refund.id).limit(BATCH)).all()
    for payment in payments:
        fulfilment.payment_succeeded(payment)
    for refund in refunds:
        fulfilment.refund_succeeded(refund)
    return len(payments) + len(refunds)


def sweep_receipts_without_email(now: datetime | None = None) -> int:
    """Record and queue the email of receipts and refund notes that have none.

    Issuing now inserts the email row with the receipt, so this only finds receipts issued
    by an older build whose job died between the two commits; the dedupe key of the
    original email makes it safe to run while a late job still runs.
    """
    now = now or utcnow()
    orphans = db.session.scalars(
        select(Receipt).join(Payment, Payment.id == Receipt.payment_id)
        .join(User, User.id == Payment.user_id)
        # A receipt waits while its owner's address is unconfirmed, and goes once it is.
        .where(Receipt.created_at >= now - RECEIPT_WINDOW, User.email_verified_at.is_not(None),
               ~exists().where(OutboundEmail.receipt_id == Receipt.id))
        .order_by(Receipt.id).limit(BATCH)).all()
    for receipt in orphans:
        log.warning("sweeper: %s %s had no email; recording it", receipt.series,
                    receipt.number)
        receipts.queue_receipt_email(receipt)
    return len(orphans)


def sweep_unfinished_payments(now: datetime | None = None) -> int:
    """Cancel payments left unfinished past UNFINISHED_PAYMENT_TTL (and those flagged)."""
    canceled = 0
    for payment_id in payments_service.unfinished_payments_due(now, limit=BATCH):
        payment = db.session.get(Payment, payment_id)
        if payment is None:
            continue
        try:
            if payments_service.cancel_unfinished_payment(payment).status == "canceled":
                canceled += 1
        except ProviderUnavailable:  # Stripe unreachable: the next sweep tries again
            discard()
            log.warning("sweeper: payment %s could not be canceled now", payment.public_id)
            break
        except DomainError:  # this one failed (a saved error answer): the others go on
            discard()
            log.warning("sweeper: payment %s could not be canceled", payment.public_id)
    if canceled:
        log.info("sweeper canceled %d unfinished payment(s)", canceled)
    return canceled


def purge_idempotency_keys() -> int:
    return idempotency.purge_expired()


SWEEPS: dict[str, Callable[[], int]] = {
    "webhook_events": sweep_webhook_events,
    "emails": sweep_pending_emails,
    "receipts": sweep_missing_receipts,
    "receipt_emails": sweep_receipts_without_email,
    "refunds": sweep_pending_refunds,
    "unfinished_payments": sweep_unfinished_payments,
    "idempotency_keys_purged": purge_idempotency_keys,
    # The admin overview's daily totals, for the days whose rows changed.
    "daily_totals": overview.roll_up,
}


def run_sweep() -> dict[str, int]:
    """One pass over every kind; one kind failing does not stop the others."""
    counts: dict[str, int] = {}
    for name, sweep in SWEEPS.items():
        try:
            counts[name] = sweep()
        except Exception:  # noqa: BLE001 (logged; the next sweep tries again)
            discard()
            log.exception("sweeper: %s failed", name)
            counts[name] = -1
    return counts


def run_sweep_if_due(interval: int) -> dict[str, int] | None:
    """Sweep unless another worker swept within `interval` seconds (a Redis lock)."""
    try:
        if not get_redis().set(LOCK_KEY, "1", nx=True, ex=max(1, interval - 1)):
            return None
    except redis.exceptions.RedisError:
        pass  # without Redis, sweep anyway: the database work (purging) still helps
    return run_sweep()


class PeriodicSweeper(threading.Thread):
    """A daemon thread of the worker process: `run_sweep_if_due` every `interval` seconds."""

    def __init__(self, app: Flask, interval: int) -> None:
        super().__init__(name="sweeper", daemon=True)
        self.app = app
        self.interval = max(1, interval)
        self.stopping = threading.Event()

    def run(self) -> None:
        delay = 0.0  # sweep at start-up: that is when work lost by a dead worker is found
        while not self.stopping.wait(delay):
            delay = float(self.interval)
            with self.app.app_context():
                try:
                    run_sweep_if_due(self.interval)
                except Exception:  # noqa: BLE001 (never let the thread die)
                    log.exception("sweeper: sweep failed")
                finally:
                    db.session.remove()

    def stop(self) -> None:
        self.stopping.set()


def start_periodic_sweeper(app: Flask, interval: int) -> PeriodicSweeper:
    sweeper = PeriodicSweeper(app, interval)
    sweeper.start()
    return sweeper


# --- reconcile -------------------------------------------------------------------------------

@dataclass
class ReconcileReport:
    checked: int = 0
    changed: int = 0
    errors: int = 0
    changes: list[str] = field(default_factory=list)

    def add(self, line: str, on_change: Callable[[str], None] | None) -> None:
        self.changes.append(line)
        if on_change:
            on_change(line)


def _snapshot(payment: Payment) -> dict[str, Any]:
    refunds = db.session.scalars(select(Refund).where(Refund.payment_id == payment.id)).all()
    return {"status": payment.status, "amount_refunded": payment.amount_refunded,
            "card": (payment.card_brand, payment.card_last4),
            "charge": payment.stripe_charge_id,
            "dispute": (f"{payment.stripe_dispute_id} ({payment.dispute_status or 'unknown'})"
                        if payment.stripe_dispute_id else None),
            "refunds": {r.public_id: (r.status, r.amount) for r in refunds}}


def _differences(public_id: str, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    lines = []
    for key in ("status", "amount_refunded", "charge", "card", "dispute"):
        if before[key] != after[key]:
            lines.append(f"{public_id}: {key} {before[key]} -> {after[key]}")
    for refund_id, (status, amount) in after["refunds"].items():
        old = before["refunds"].get(refund_id)
        if old is None:
            lines.append(f"{public_id}: new refund {refund_id} {amount} {status}")
        elif old[0] != status:
            lines.append(f"{public_id}: refund {refund_id} {old[0]} -> {status}")
    return lines


def _record_lost_intents(since: datetime, report: ReconcileReport,
                         on_change: Callable[[str], None] | None) -> None:
    """Payments whose PaymentIntent create answer never reached us: ask Stripe again."""
    lost = list(db.session.scalars(
        select(Payment).where(or_(
            and_(Payment.stripe_payment_intent_id.is_(None), Payment.needs_reconcile.is_(True)),
            # A spent create key may have left an intent, even once the customer paid with
            # the next key (which cleared the flag).
            and_(Payment.create_attempts > 0,
                 or_(Payment.needs_reconcile.is_(True), Payment.created_at >= since))))
        .order_by(Payment.id)))
    for payment in lost:
        public_id = payment.public_id
        if payment.create_attempts:
            _cancel_leftovers(payment, report, on_change)
            continue
        try:
            intent_id = checkout.recover_lost_intent(payment)
        except DomainError as error:
            discard()
            report.errors += 1
            line = f"{public_id}: intent still unknown ({error.code}: {error.message})"
        else:
            report.changed += 1
            line = f"{public_id}: recorded PaymentIntent {intent_id} whose answer was lost"
        report.add(line, on_change)


def _cancel_leftovers(payment: Payment, report: ReconcileReport,
                      on_change: Callable[[str], None] | None) -> None:
    """A payment whose create Stripe answered with a saved failure: the payment stays as
    it is (failed, or paid by the customer's next attempt with a new key); any intent the
    failed create made is canceled, and reconcile says so."""
    public_id, flagged = payment.public_id, payment.needs_reconcile
    try:
        leftovers = checkout.cancel_leftover_intents(payment)
    except DomainError as error:
        discard()
        report.errors += 1
        report.add(f"{public_id}: could not look for intents its failed create left "
                   f"({error.code}: {error.message})", on_change)
        return
    if not (flagged or leftovers.canceled or leftovers.not_cancelable):
        return  # looked at before: nothing left to do
    report.changed += 1
    state = ("the customer can try again with a new key" if payment.status == "failed"
             else f"the payment is {payment.status} with "
                  f"{payment.stripe_payment_intent_id or 'no PaymentIntent yet'}")
    done = (f"canceled {', '.join(leftovers.canceled)} that it left unconfirmed"
            if leftovers.canceled else "Stripe made no intent for it")
    report.add(f"{public_id}: Stripe saved a 500 for its PaymentIntent create; {done}; "
               f"{state}", on_change)
    if leftovers.not_cancelable:
        report.errors += 1
        report.add(f"{public_id}: {', '.join(leftovers.not_cancelable)} made by the failed "
                   "create moved on at Stripe; look at it in the Dashboard", on_change)


def _stripe_activity_since(since: datetime, report: ReconcileReport,
                           on_change: Callable[[str], None] | None) -> dict[int, set[str]]:
    """Our payments (of any age) that Stripe refunded or saw disputed since `since`, each
    with the ids of those disputes: their webhooks may never have arrived."""
    created_gte = int(since.timestamp())
    try:
        stripe_refunds = stripe_gateway.list_refunds_created_since(created_gte)
        stripe_disputes = stripe_gateway.list_disputes_created_since(created_gte)
    except DomainError as error:
        discard()
        report.errors += 1
        report.add(f"could not list Stripe's refunds and disputes since {since.isoformat()} "
                   f"({error.code}: {error.message})", on_change)
        return {}
    found: dict[int, set[str]] = {}
    for refund in stripe_refunds:
        payment = payments_service.find_payment_by_stripe_reference(refund.payment_intent_id,
                                                                    refund.charge_id)
        if payment is not None:
            found.setdefault(payment.id, set())
    for dispute in stripe_disputes:
        payment = payments_service.find_payment_by_stripe_reference(dispute.payment_intent_id,
                                                                    dispute.charge_id)
        if payment is not None:
            found.setdefault(payment.id, set()).add(dispute.id)
    return found


def _reconcile_payment(payment_id: int, dispute_ids: set[str], report: ReconcileReport,
                       on_change: Callable[[str], None] | None) -> None:
    """Re-read one payment from Stripe with its refunds and disputes; report what changed."""
    payment = db.session.get_one(Payment, payment_id)
    public_id, intent_id = payment.public_id, payment.stripe_payment_intent_id
    before = _snapshot(payment)
    report.checked += 1
    try:
        synced = payments_service.sync_payment_intent(intent_id) if intent_id else None
        payment = db.session.get_one(Payment, payment_id)
        db.session.refresh(payment)
        if payment.stripe_charge_id and (synced is not None or not intent_id):
            refunds.sync_charge_refunds(payment.stripe_charge_id)
        db.session.refresh(payment)
        known = {payment.stripe_dispute_id} if payment.stripe_dispute_id else set()
        for dispute_id in sorted(dispute_ids | known):
            disputes.apply_dispute(dispute_id)
        db.session.refresh(payment)
    except (DomainError, disputes.DisputedPaymentUnknown) as error:
        discard()
        report.errors += 1
        reason = (f"{error.code}: {error.message}" if isinstance(error, DomainError)
                  else str(error))
        report.add(f"{public_id}: could not re-read from Stripe ({reason})", on_change)
        return
    lines = _differences(public_id, before, _snapshot(payment))
    if lines:
        report.changed += 1
        for line in lines:
            report.add(line, on_change)


def reconcile_payments(since: datetime, *,
                       on_change: Callable[[str], None] | None = None) -> ReconcileReport:
    """Re-read from Stripe every payment created since `since` (and any flagged as unknown),
    and every older one that Stripe refunded or saw disputed since then, with its refunds
    and disputes; apply what differs and report one line per change."""
    report = ReconcileReport()
    _record_lost_intents(since, report, on_change)
    recent = list(db.session.scalars(
        select(Payment.id)
        .where(Payment.stripe_payment_intent_id.is_not(None),
               or_(Payment.created_at >= since, Payment.needs_reconcile.is_(True)))
        .order_by(Payment.id)))
    activity = _stripe_activity_since(since, report, on_change)
    older = sorted(set(activity) - set(recent))
    for payment_id in recent + older:
        _reconcile_payment(payment_id, activity.get(payment_id, set()), report, on_change)
    return report
