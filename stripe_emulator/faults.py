# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (C) 2026 the payments_site authors; extends localstripe (C) 2017 Adrien Vergé.
#
# This program is free software: you can redistribute it and/or modify it under the terms of
# the GNU General Public License as published by the Free Software Foundation, either version 3
# of the License, or (at your option) any later version. This program is distributed in the hope
# that it will be useful, but WITHOUT ANY WARRANTY; without even the implied warranty of
# MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the LICENSE file in this folder.
"""Injected failures (5xx, 429, dropped connections, delays) for the app's reliability tests."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from .errors import StripeError


@dataclass
class Fault:
    """The next `times` requests matching method + path prefix fail this way."""

    path_prefix: str
    method: str | None = None
    status: int | None = 500  # None: only the delay; 0: close the connection, no response
    delay_s: float = 0.0
    jitter_s: float = 0.0  # each delay is delay_s ± up to jitter_s (uniform), never below 0
    times: int = 1
    after: bool = False  # True: the request takes effect, then its response is lost/failed

    def public(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def pause_s(self) -> float:
        """How long this request waits: `delay_s`, spread by `jitter_s` as network and
        Stripe's own latency spread."""
        if not self.jitter_s:
            return self.delay_s
        return max(0.0, self.delay_s + random.uniform(-self.jitter_s, self.jitter_s))


active: list[Fault] = []


def parse(data: dict[str, Any]) -> Fault:
    known = {"method", "path_prefix", "status", "delay_s", "jitter_s", "times", "after"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise StripeError(400, f"Received unknown parameter: {unknown[0]}", param=unknown[0])
    try:
        status = data.get("status", 500)
        status = None if status in (None, "", "null") else int(status)
        delay = float(data.get("delay_s") or 0)
        jitter = float(data.get("jitter_s") or 0)
        times = int(data.get("times") or 1)
        after = str(data.get("after", "false")).lower() in ("true", "1")
    except (TypeError, ValueError):
        raise StripeError(400, "Invalid fault: status/delay_s/jitter_s/times must be "
                          "numbers.") from None
    if status is not None and status != 0 and not 400 <= status <= 599:
        raise StripeError(400, "Invalid fault: status must be 0 or 400..599.", param="status")
    if not 0 <= delay <= 30:
        raise StripeError(400, "Invalid fault: delay_s must be within 0..30.", param="delay_s")
    if not 0 <= jitter <= delay:
        raise StripeError(400, "Invalid fault: jitter_s must be within 0..delay_s.",
                          param="jitter_s")
    if times < 1:
        raise StripeError(400, "Invalid fault: times must be at least 1.", param="times")
    method = data.get("method")
    return Fault(path_prefix=str(data.get("path_prefix") or "/"),
                 method=str(method).upper() if method else None, status=status,
                 delay_s=delay, jitter_s=jitter, times=times, after=after)


def take(method: str, path: str) -> Fault | None:
    """Consume one use of the first fault that matches this request, if any."""
    for fault in active:
        if (fault.method is None or fault.method == method) and \
                path.startswith(fault.path_prefix):
            fault.times -= 1
            if fault.times <= 0:
                active.remove(fault)
            return fault
    return None


def error_body(status: int) -> dict[str, Any]:
    """Stripe's body for the failure: rate_limit for 429, api_error for 5xx."""
    if status == 429:
        return {"error": {
            "code": "rate_limit", "type": "invalid_request_error",
            "message": "Request rate limit exceeded. You can learn more about rate limits here "
                       "https://docs.stripe.com/rate-limits.",
            "doc_url": "https://docs.stripe.com/error-codes/rate-limit"}}
    if status >= 500:
        return {"error": {"type": "api_error",
                          "message": "An unknown error occurred while processing your request "
                                     "(injected by the Stripe emulator)."}}
    return {"error": {"type": "invalid_request_error",
                      "message": f"Injected failure with status {status}."}}
