"""Work handed to the RQ worker: each job the app queues, named by its task's dotted path.

Services queue work through these functions and never import `payments_site.tasks` (the
tasks import the services, so the imports run one way). A job's id is derived from the row
it is about, which makes queueing it twice harmless while RQ still knows the job. When Redis
cannot be reached a function returns False and the row stays pending: the sweeper queues it
again later.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import current_app
from redis import Redis
from rq import Callback, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from payments_site import metrics, tracing
from payments_site.queues import get_queue, get_redis

log = logging.getLogger(__name__)

# The tasks, by dotted path (RQ imports them in the worker).
ISSUE_PAYMENT_RECEIPT = "payments_site.tasks.receipts.issue_payment_receipt"
ISSUE_REFUND_NOTE = "payments_site.tasks.receipts.issue_refund_note"
SUBMIT_REFUND = "payments_site.tasks.refunds.submit_refund"
PROCESS_WEBHOOK_EVENT = "payments_site.tasks.webhooks.process_webhook_event"
SEND_EMAIL = "payments_site.tasks.emails.send_email"

DEFAULT_RETRY_INTERVALS = [5, 15, 60, 300, 900]
# Delays between RQ retries of one email delivery (seconds).
EMAIL_RETRY_INTERVALS = [10, 60, 300, 900, 3600]
# Kept this long when a job has failed for good, for an operator to look at.
FAILURE_TTL = 7 * 24 * 3600


def issue_payment_receipt(payment_id: int) -> bool:
    return _enqueue("receipts", ISSUE_PAYMENT_RECEIPT, payment_id,
                    job_id=f"receipt-payment-{payment_id}")


def issue_refund_note(refund_id: int) -> bool:
    return _enqueue("receipts", ISSUE_REFUND_NOTE, refund_id,
                    job_id=f"receipt-refund-{refund_id}")


def submit_refund(refund_id: int) -> bool:
    return _enqueue("payments", SUBMIT_REFUND, refund_id, job_id=f"refund-{refund_id}")


def webhook_job_id(event_row_id: int) -> str:
    return f"webhook-{event_row_id}"


def process_webhook_event(event_row_id: int) -> bool:
    return _enqueue("webhooks", PROCESS_WEBHOOK_EVENT, event_row_id,
                    job_id=webhook_job_id(event_row_id))


def email_job_id(email_id: int) -> str:
    return f"email-{email_id}"


def send_email(email_id: int) -> bool:
    """Queue one email's delivery, retried with backoff up to MAIL_MAX_ATTEMPTS attempts."""
    max_attempts = int(current_app.config["MAIL_MAX_ATTEMPTS"])
    return _enqueue("emails", SEND_EMAIL, email_id, job_id=email_job_id(email_id),
                    retry=Retry(max=max(max_attempts - 1, 1), interval=EMAIL_RETRY_INTERVALS))


def waiting(job_id: str) -> bool:
    """Whether RQ still holds this job to run without our help: queued, or a retry or a
    dependency waiting its turn. False when Redis cannot say (the caller queues it again,
    which the job id makes harmless)."""
    try:
        status = Job.fetch(job_id, connection=get_redis()).get_status(refresh=False)
    except (NoSuchJobError, redis.exceptions.RedisError):
        return False
    return status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED)


def job_succeeded(job: Job, connection: Redis, result: Any, *args: Any, **kwargs: Any) -> None:
    """RQ's success callback of every job: counted by queue (payments_site.metrics)."""
    metrics.job_finished(job.origin, "succeeded")


def job_failed(job: Job, connection: Redis, *exc_info: Any, **kwargs: Any) -> None:
    """RQ's failure callback of every job run that raised (it may be retried)."""
    metrics.job_finished(job.origin, "failed")


def _enqueue(queue: str, task: str, *args: Any, job_id: str,
             retry: Retry | None = None) -> bool:
    """Queue `task(*args)`; False when Redis is unreachable.

    The job carries the current request id (and payment) in its meta (payments_site.tracing),
    so the worker's log lines for it, and the jobs it queues, name the request that began it.
    """
    try:
        rq_queue = get_queue(queue)
        # One pipeline (MULTI/EXEC): the job, its queue entry and the queue registration
        # reach Redis in a single round trip instead of two.
        with rq_queue.connection.pipeline() as pipe:
            rq_queue.enqueue(task, *args, job_id=job_id,
                             retry=retry or Retry(max=5, interval=DEFAULT_RETRY_INTERVALS),
                             failure_ttl=FAILURE_TTL, pipeline=pipe, meta=tracing.job_meta(),
                             on_success=Callback(job_succeeded),
                             on_failure=Callback(job_failed))
            pipe.execute()
    except redis.exceptions.RedisError as error:
        log.warning("could not enqueue %s on %s: %s", task.rpartition(".")[2], queue,
                    error.__class__.__name__)
        return False
    return True
