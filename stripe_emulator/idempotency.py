# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (C) 2026 the payments_site authors; extends localstripe (C) 2017 Adrien Vergé.
#
# This program is free software: you can redistribute it and/or modify it under the terms of
# the GNU General Public License as published by the Free Software Foundation, either version 3
# of the License, or (at your option) any later version. This program is distributed in the hope
# that it will be useful, but WITHOUT ANY WARRANTY; without even the implied warranty of
# MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the LICENSE file in this folder.
"""Idempotency-Key handling as Stripe documents it (https://docs.stripe.com/api/idempotent_requests).

Once an endpoint has begun executing, its status and body are saved under (API key, key) and
replayed for 24 hours, 500s included; a request whose parameters fail validation saves nothing.
The same key with other parameters is refused, and a second request while the first is still
running gets 409 `idempotency_key_in_use` at once.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

TTL_S = 24 * 3600  # Stripe keeps keys for at least 24 hours


@dataclass
class Saved:
    """The first response for one (API key, Idempotency-Key)."""

    fingerprint: str
    status: int
    body: bytes
    request_id: str
    created: float
    should_retry: str | None = None  # the Stripe-Should-Retry header it was sent with


entries: dict[tuple[str, str], Saved] = {}
# Keys whose first request is still running (the server is one event loop: checking and
# adding happen without an await in between, so no lock is needed).
in_flight: set[tuple[str, str]] = set()


def fingerprint(method: str, path: str, params: Any) -> str:
    canonical = json.dumps([method, path, params], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def get(scope: tuple[str, str]) -> Saved | None:
    saved = entries.get(scope)
    if saved is not None and time.time() - saved.created > TTL_S:
        del entries[scope]
        return None
    return saved


def saves(status: int) -> bool:
    """Which results are kept: those of an endpoint that ran (successes, declines, server
    errors). Other 4xx are the validation failures Stripe does not save."""
    return status < 400 or status == 402 or status >= 500


def prune() -> None:
    cutoff = time.time() - TTL_S
    for scope in [s for s, v in entries.items() if v.created < cutoff]:
        del entries[scope]


def reset() -> None:
    entries.clear()
    in_flight.clear()
