"""Fixtures for the emulator tests (the `emulator` fixture itself is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe

from payments_site.devtools.stack import StripeEmulator
from tests.emulator.helpers import WebhookReceiver, client


@pytest.fixture
def sc(emulator: StripeEmulator) -> stripe.StripeClient:
    return client(emulator.url)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    rec = WebhookReceiver()
    yield rec
    rec.close()
