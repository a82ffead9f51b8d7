"""What GET /metrics reads at scrape time: queue depths and ages, emails and webhook events
that gave up. Read once per scrape, never per request."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC

import redis
from rq.job import Job
from sqlalchemy import func, select

from payments_site import metrics
from payments_site.extensions import db
from payments_site.models import OutboundEmail, WebhookEvent, utcnow
from payments_site.queues import QUEUE_NAMES, get_queue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueState:
    name: str
    depth: int
    oldest_age_seconds: float  # 0 when the queue is empty


def queue_states() -> list[QueueState]:
    """Each RQ queue's waiting jobs and how long the oldest has waited; [] when Redis does
    not answer (the gauges are then absent, and `up`-style alerts on them fire)."""
    states = []
    try:
        for name in QUEUE_NAMES:
            queue = get_queue(name)
            depth = queue.count
            age = 0.0
            oldest_ids = queue.get_job_ids(0, 1)
            if oldest_ids:
                job = Job.fetch(oldest_ids[0], connection=queue.connection)
                enqueued = job.enqueued_at
                if enqueued is not None:
                    if enqueued.tzinfo is None:  # RQ writes UTC
                        enqueued = enqueued.replace(tzinfo=UTC)
                    age = max((utcnow() - enqueued).total_seconds(), 0.0)
            states.append(QueueState(name, depth, age))
    except (redis.exceptions.RedisError, ValueError) as error:
        log.warning("metrics: could not read the queues: %s", error.__class__.__name__)
        return []
    return states


def count_failed_emails() -> int:
    return int(db.session.scalar(select(func.count()).select_from(OutboundEmail)
                                 .where(OutboundEmail.status == "failed")) or 0)


def count_failed_webhook_events() -> int:
    return int(db.session.scalar(select(func.count()).select_from(WebhookEvent)
                                 .where(WebhookEvent.status == "failed")) or 0)


def readings() -> list[metrics.Reading]:
    """The gauges a scrape reads now from Redis and the database."""
    states = queue_states()
    found = [metrics.Reading("payments_failed_emails", "Emails that gave up, waiting for an "
                             "operator's Retry (/admin/emails).", (),
                             {(): float(count_failed_emails())}),
             metrics.Reading("payments_failed_webhook_events", "Webhook events whose handler "
                             "failed (retried later, or given up; /admin/webhooks).", (),
                             {(): float(count_failed_webhook_events())})]
    if states:
        found += [
            metrics.Reading("payments_queue_depth", "Jobs waiting in each RQ queue.",
                            ("queue",), {(s.name,): float(s.depth) for s in states}),
            metrics.Reading("payments_queue_oldest_job_age_seconds", "How long the oldest "
                            "waiting job of each RQ queue has waited (0 when empty).",
                            ("queue",), {(s.name,): s.oldest_age_seconds for s in states}),
        ]
    return found
