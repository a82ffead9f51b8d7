# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (C) 2026 the payments_site authors; extends localstripe (C) 2017 Adrien Vergé.
#
# This program is free software: you can redistribute it and/or modify it under the terms of
# the GNU General Public License as published by the Free Software Foundation, either version 3
# of the License, or (at your option) any later version. This program is distributed in the hope
# that it will be useful, but WITHOUT ANY WARRANTY; without even the implied warranty of
# MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the LICENSE file in this folder.
"""Webhook endpoints and signed, retried, optionally duplicated or shuffled event delivery."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from . import contract

log = logging.getLogger("stripe_emulator.webhooks")

# Stripe retries for days with exponential backoff; tests need the same shape in seconds.
RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0)
DELIVERY_TIMEOUT_S = 10.0


@dataclass
class Endpoint:
    """One registered receiver (the `/_config/webhooks/<name>` body)."""

    name: str
    url: str
    secret: str
    events: list[str] | None = None
    duplicate: int = 1
    shuffle: bool = False
    shuffle_window_s: float = 0.5
    drop_rate: float = 0.0  # probability that an event is never delivered (lost webhook)
    # Runtime state, rebuilt after a reload from disk.
    _queue: asyncio.Queue[tuple[str, bytes]] | None = field(default=None, repr=False)
    _buffer: list[tuple[str, bytes]] = field(default_factory=list, repr=False)

    def wants(self, event_type: str) -> bool:
        return self.events is None or "*" in self.events or event_type in self.events

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "events": self.events,
                "duplicate": self.duplicate, "shuffle": self.shuffle,
                "shuffle_window_s": self.shuffle_window_s, "drop_rate": self.drop_rate}

    def __getstate__(self) -> dict[str, Any]:
        # Queues and buffers belong to the running loop: persist only the configuration.
        state = dict(self.__dict__)
        state["_queue"] = None
        state["_buffer"] = []
        return state


endpoints: dict[str, Endpoint] = {}
_tasks: set[asyncio.Task[None]] = set()
_session: aiohttp.ClientSession | None = None
deliveries: list[dict[str, Any]] = []  # recent delivery attempts, for /_config/webhooks


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The `Stripe-Signature` header value, computed exactly as Stripe does."""
    mac = hmac.new(secret.encode(), b"%d.%s" % (timestamp, payload), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def _spawn(coro: Any) -> None:
    task = asyncio.ensure_future(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def register(endpoint: Endpoint) -> None:
    old = endpoints.get(endpoint.name)
    if old is not None and old._queue is not None:
        old._queue = None
    endpoints[endpoint.name] = endpoint


def reset() -> None:
    """Forget every endpoint and cancel deliveries still in flight (between tests)."""
    endpoints.clear()
    deliveries.clear()
    for task in list(_tasks):
        task.cancel()
    _tasks.clear()


def publish(event: dict[str, Any]) -> None:
    """Queue an event for every endpoint that wants it; never blocks the API response."""
    if contract.checker is not None:
        contract.checker.queue_event(event)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # objects built outside the server (e.g. on load) send nothing
    item = (str(event["id"]), json.dumps(event, indent=2).encode())
    for endpoint in list(endpoints.values()):
        if not endpoint.wants(event["type"]):
            continue
        if endpoint.drop_rate and random.random() < endpoint.drop_rate:
            log.info("dropping %s for %s (drop_rate)", event["id"], endpoint.name)
            continue
        for _ in range(max(1, endpoint.duplicate)):
            if endpoint.shuffle:
                endpoint._buffer.append(item)
                if len(endpoint._buffer) == 1:
                    _spawn(_flush_shuffled(endpoint))
            else:
                if endpoint._queue is None:
                    endpoint._queue = asyncio.Queue()
                    _spawn(_ordered_worker(endpoint, endpoint._queue))
                endpoint._queue.put_nowait(item)


async def _ordered_worker(endpoint: Endpoint, queue: asyncio.Queue[tuple[str, bytes]]) -> None:
    # One worker per endpoint keeps first attempts in creation order; retries run on the side
    # so a failing receiver never holds back later events (Stripe does not block either).
    while endpoints.get(endpoint.name) is endpoint and endpoint._queue is queue:
        item = await queue.get()
        if not await _attempt(endpoint, item, 0):
            _spawn(_retry(endpoint, item))


async def _flush_shuffled(endpoint: Endpoint) -> None:
    await asyncio.sleep(endpoint.shuffle_window_s)
    batch, endpoint._buffer = endpoint._buffer, []
    random.shuffle(batch)
    for item in batch:
        if not await _attempt(endpoint, item, 0):
            _spawn(_retry(endpoint, item))


async def _retry(endpoint: Endpoint, item: tuple[str, bytes]) -> None:
    for attempt, delay in enumerate(RETRY_DELAYS_S, start=1):
        await asyncio.sleep(delay)
        if endpoints.get(endpoint.name) is not endpoint:
            return
        if await _attempt(endpoint, item, attempt):
            return


async def _attempt(endpoint: Endpoint, item: tuple[str, bytes], attempt: int) -> bool:
    global _session
    event_id, payload = item
    if _session is None or _session.closed:
        _session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT_S))
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        # Signed at send time, like Stripe, so retries stay inside the tolerance window.
        "Stripe-Signature": sign(payload, endpoint.secret, int(time.time())),
    }
    status: int | None = None
    try:
        async with _session.post(endpoint.url, data=payload, headers=headers) as resp:
            status = resp.status
            await resp.read()
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        log.info("webhook to %s failed: %s", endpoint.url, exc)
    ok = status is not None and 200 <= status < 300
    deliveries.append({"endpoint": endpoint.name, "attempt": attempt, "status": status,
                       "event": event_id, "at": time.time()})
    del deliveries[:-1000]
    return ok


async def close() -> None:
    global _session
    if _session is not None:
        await _session.close()
        _session = None
