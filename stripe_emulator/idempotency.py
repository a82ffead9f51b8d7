# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (C) 2026 the payments_site authors; extends localstripe (C) 2017 Adrien Vergé.
#
# This program is free software: you can redistribute it and/or modify it under the terms of
# the GNU General Public License as published by the Free Software Foundation, either version 3
# of the License, or (at your option) any later version. This program is distributed in the hope
# that it will be useful, but WITHOUT ANY WARRANTY; without even the implied warranty of
# MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the LICENSE file in this folder.
"""Idempotency-Key handling: replay the first response, reject reuse with other parameters."""

from __future__ import annotations

import asyncio
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


entries: dict[tuple[str, str], Saved] = {}
# One lock per key makes check → run handler → store atomic, even with concurrent retries.
_locks: dict[tuple[str, str], asyncio.Lock] = {}


def fingerprint(method: str, path: str, params: Any) -> str:
    canonical = json.dumps([method, path, params], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def lock_for(scope: tuple[str, str]) -> asyncio.Lock:
    lock = _locks.get(scope)
    if lock is None:
        lock = _locks[scope] = asyncio.Lock()
    return lock


def get(scope: tuple[str, str]) -> Saved | None:
    saved = entries.get(scope)
    if saved is not None and time.time() - saved.created > TTL_S:
        del entries[scope]
        return None
    return saved


def prune() -> None:
    cutoff = time.time() - TTL_S
    for scope in [s for s, v in entries.items() if v.created < cutoff]:
        del entries[scope]
    for scope in [s for s, lk in _locks.items() if not lk.locked() and s not in entries]:
        del _locks[scope]


def reset() -> None:
    entries.clear()
    _locks.clear()
