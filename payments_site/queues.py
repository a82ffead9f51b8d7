"""Redis and the RQ queues; enqueueing never breaks a request when Redis is down."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis
from flask import current_app
from rq import Queue, Retry

log = logging.getLogger(__name__)

QUEUE_NAMES = ("webhooks", "payments", "receipts", "emails")


def redis_connection_from_url(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5,
                                health_check_interval=30)


def get_redis() -> redis.Redis:
    """The app's Redis client (one connection pool per process)."""
    client = current_app.extensions.get("redis")
    if client is None:
        client = redis_connection_from_url(current_app.config["REDIS_URL"])
        current_app.extensions["redis"] = client
    return client


def get_queue(name: str) -> Queue:
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=get_redis(), default_timeout=300)


def enqueue(queue: str, func: Callable[..., Any], *args: Any, job_id: str | None = None,
            retry: Retry | None = None, **kwargs: Any) -> bool:
    """Enqueue a job; False when Redis is unreachable (the row stays pending for the sweeper).

    A job id makes the enqueue idempotent while the job is still known to Redis.
    """
    try:
        get_queue(queue).enqueue(func, *args, job_id=job_id,
                                 retry=retry or Retry(max=5, interval=[5, 15, 60, 300, 900]),
                                 failure_ttl=7 * 24 * 3600, **kwargs)
    except redis.exceptions.RedisError as error:
        log.warning("could not enqueue %s on %s: %s", getattr(func, "__name__", func), queue,
                    error.__class__.__name__)
        return False
    return True
