"""Test helpers: signing webhook payloads the way Stripe does, finding card numbers,
watching the SQL a block of code runs, and refund rows made directly."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event

from payments_site.extensions import db
from payments_site.models import Payment, Refund


@contextmanager
def statements_run(engine: Engine, describe: Callable[[Any, str], Any] | None = None
                   ) -> Iterator[list[Any]]:
    """The SQL statements `engine` runs inside the block, in order; each one as given, or as
    `describe(connection, statement)`."""
    seen: list[Any] = []

    def record(connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement if describe is None else describe(connection, statement))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


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


# A run of 13-19 digits, optionally grouped by spaces or dashes. `embedded` also finds runs
# glued to letters (a number inside an id); the default wants a word boundary on both sides,
# so long numeric ids in logs (Message-IDs, timestamps) do not count.
_DIGITS_EMBEDDED = re.compile(r"\d(?:[ -]?\d){12,18}")
_DIGITS_BOUNDED = re.compile(r"(?<![A-Za-z0-9])(?:\d[ -]?){12,18}\d(?![A-Za-z0-9])")
# A hex digest (a KDF's or sha256's output, 32+ hex characters): random, so about one in a
# hundred holds a Luhn-valid run of 16 digits by chance. A digest cannot carry card data.
_HEX_DIGEST = re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{32,}(?![0-9A-Za-z])")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def card_numbers(text: str, *, embedded: bool = False) -> list[str]:
    """Every Luhn-valid 13-19 digit number in `text` (what a leaked card number looks like)."""
    pattern = _DIGITS_EMBEDDED if embedded else _DIGITS_BOUNDED
    digests = [m.span() for m in _HEX_DIGEST.finditer(text)]
    found = []
    for match in pattern.finditer(text):
        if any(start <= match.start() and match.end() <= end for start, end in digests):
            continue
        digits = re.sub(r"\D", "", match.group(0))
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            found.append(digits)
    return found


def emailed_link(body: str, route: str) -> str:
    """The path of the first link in an email body that goes to `route` (`/auth/reset/`)."""
    match = re.search(r"https?://[^/\s]+(" + re.escape(route) + r"[A-Za-z0-9_.\-]+)", body)
    assert match, f"no {route} link in:\n{body}"
    return match.group(1)


def follow_emailed_link(client: Any, body: str, route: str, data: dict[str, str] | None = None
                        ) -> Any:
    """Open a link from an email (its page), then press its button or send its form."""
    path = emailed_link(body, route)
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      page.get_data(as_text=True))
    assert token, "the link's page has no form"
    return client.post(path, data={"csrf_token": token.group(1), **(data or {})})


def add_refund(payment: Payment, amount: int, *, status: str = "succeeded",
               **fields: Any) -> Refund:
    """A refund row of `payment`, committed with the payment's totals it moves: reserved
    always, refunded once it succeeded. `fields` set the rest (reason, times, Stripe id)."""
    refund = Refund(payment_id=payment.id, amount=amount, currency=payment.currency,
                    status=status, **fields)
    payment.refund_reserved += amount
    if status == "succeeded":
        payment.amount_refunded += amount
    db.session.add(refund)
    db.session.commit()
    return refund
