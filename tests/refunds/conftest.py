"""Fixtures for the refund tests: an admin API client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def admin_api(client: Any, admin: Any, api_token: Callable[..., str]) -> Callable[..., Any]:
    """admin_api(body, key=None, user=None) → POST /api/payments/refund with a Bearer token."""
    tokens: dict[int, str] = {}

    def post(body: Any, key: str | None = None, user: Any = None) -> Any:
        who = user or admin
        if who.id not in tokens:
            tokens[who.id] = api_token(who)
        headers = {"Authorization": f"Bearer {tokens[who.id]}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return client.post("/api/payments/refund", json=body, headers=headers)

    return post
