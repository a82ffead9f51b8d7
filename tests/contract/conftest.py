"""Fixtures for the contract tests: an SDK client on the suite's emulator."""

from __future__ import annotations

import pytest
import stripe

from tests.emulator.helpers import client


@pytest.fixture
def sc(emulator) -> stripe.StripeClient:
    return client(emulator.url)
