"""Redis and the RQ queues (one client and one Queue object per queue and process)."""

from __future__ import annotations

import redis
from flask import current_app
from rq import Queue

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
