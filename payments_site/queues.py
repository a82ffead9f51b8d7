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
    """The named queue (one object per queue and process, like the Redis client)."""
    connection = get_redis()
    queues: dict[str, Queue] = current_app.extensions.setdefault("rq_queues", {})
    queue = queues.get(name)
    # Rebuilt when the Redis client was replaced (a new REDIS_URL).
    if queue is None or queue.connection is not connection:
        if name not in QUEUE_NAMES:
            raise ValueError(f"unknown queue {name!r}")
        queue = queues[name] = Queue(name, connection=connection, default_timeout=300)
    return queue


def enqueue(queue: str, func: Callable[..., Any], *args: Any, job_id: str | None = None,
            retry: Retry | None = None, **kwargs: Any) -> bool:
    """Enqueue a job; False when Redis is unreachable (the row stays pending for the sweeper).

    A job id makes the enqueue idempotent while the job is still known to Redis.
    """
    try:
        rq_queue = get_queue(queue)
        # One pipeline (MULTI/EXEC): the job, its queue entry and the queue registration
        # reach Redis in a single round trip instead of two.
        with rq_queue.connection.pipeline() as pipe:
            rq_queue.enqueue(func, *args, job_id=job_id,
                             retry=retry or Retry(max=5, interval=[5, 15, 60, 300, 900]),
                             failure_ttl=7 * 24 * 3600, pipeline=pipe, **kwargs)
            pipe.execute()
    except redis.exceptions.RedisError as error:
        log.warning("could not enqueue %s on %s: %s", getattr(func, "__name__", func), queue,
                    error.__class__.__name__)
        return False
    return True
