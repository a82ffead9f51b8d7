"""Test helpers: signing webhook payloads the way Stripe does."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A Stripe-Signature header for `payload` (https://docs.stripe.com/webhooks#verify-manually)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event_payload(event_type: str, obj: dict[str, Any], event_id: str) -> bytes:
    return json.dumps({"id": event_id, "object": "event", "type": event_type,
                       "api_version": "2024-06-20", "created": int(time.time()),
                       "livemode": False, "data": {"object": obj}}).encode()
