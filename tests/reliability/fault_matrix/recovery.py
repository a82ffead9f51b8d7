"""After each fault, the operator's runbook: wait for webhooks to quieten, reconcile with
Stripe, run the sweeper, and let the worker drain everything outstanding."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_

from payments_site.extensions import db
from payments_site.models import OutboundEmail, Payment, Receipt, Refund, WebhookEvent, utcnow
from payments_site.queues import QUEUE_NAMES, get_queue
from payments_site.services import emails, refunds, sweeper
from payments_site.services.webhooks import processing_lease
from tests.reliability.fault_matrix.stack import MatrixStack


def quiet_webhooks(stack: MatrixStack, timeout: float = 20.0) -> None:
    """Wait until the emulator has had nothing more to deliver for a moment."""
    deadline = time.monotonic() + timeout
    last, still_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = len(stack.timed.samples)
        if count != last:
            last, still_since = count, time.monotonic()
        elif time.monotonic() - still_since > 2.5:
            return
        time.sleep(0.25)


def sweep_now() -> int:
    """The sweeper, with its grace periods treated as elapsed (the time a real sweep waits)."""
    swept = sweeper.sweep_webhook_events(everything=True)
    swept += sweeper.sweep_missing_receipts(
        now=utcnow() + sweeper.RECEIPT_GRACE + timedelta(seconds=1))
    swept += emails.requeue_pending_emails(older_than=timedelta(0))
    swept += refunds.resubmit_stale_refunds(older_than=timedelta(0))
    return swept


def reconcile_and_sweep(stack: MatrixStack, since: datetime) -> tuple[int, int]:
    """What an operator runs after an incident: `flask payments reconcile`, then the sweeper."""
    with stack.app.app_context():
        report = sweeper.reconcile_payments(since)
        swept = sweep_now()
        db.session.remove()
    return report.changed, swept


def outstanding_work() -> int:
    """Work the database says is not finished: events waiting (or claimed in the last 30 s),
    emails and refunds pending, succeeded payments and refunds without their receipt."""
    # A claim older than that belongs to a worker that was killed: its lease (10 minutes by
    # default) hands the event to the sweeper later, and reconcile re-reads Stripe meanwhile.
    recent_claim = utcnow() + processing_lease() - timedelta(seconds=30)
    count = db.session.query(WebhookEvent).filter(or_(
        WebhookEvent.status == "pending",
        and_(WebhookEvent.status == "processing",
             WebhookEvent.next_attempt_at > recent_claim))).count()
    count += db.session.query(OutboundEmail).filter_by(status="pending").count()
    count += db.session.query(Refund).filter_by(status="pending").count()
    count += db.session.query(Payment).filter(
        Payment.status == "succeeded",
        ~exists().where(Receipt.payment_id == Payment.id, Receipt.series == "receipt")).count()
    count += db.session.query(Refund).filter(
        Refund.status == "succeeded",
        ~exists().where(Receipt.refund_id == Refund.id)).count()
    return int(count)


def drain(stack: MatrixStack, timeout: float = 60.0) -> bool:
    """Let the worker finish everything (queued retries brought forward); True when idle."""
    deadline = time.monotonic() + timeout
    idle_rounds = 0
    last_sweep = time.monotonic()
    with stack.app.app_context():
        while time.monotonic() < deadline:
            stack.worker.ensure_running()
            queued = 0
            for queue in (get_queue(name) for name in QUEUE_NAMES):
                scheduled = queue.scheduled_job_registry
                for job_id in scheduled.get_job_ids():
                    job = queue.fetch_job(job_id)
                    scheduled.remove(job_id)
                    if job is not None:
                        queue.enqueue_job(job)
                queued += queue.count
            pending = outstanding_work()
            db.session.remove()
            if queued == 0 and pending == 0:
                idle_rounds += 1
                if idle_rounds >= 3:
                    return True
            else:
                idle_rounds = 0
                if queued == 0 and time.monotonic() - last_sweep > 3:
                    sweep_now()  # nothing queued yet work is pending: its job was lost
                    db.session.remove()
                    last_sweep = time.monotonic()
            time.sleep(0.5)
    return False
