"""Shared fixtures: the real Stripe emulator, database, Redis and app for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests._services import EmulatorProcess


@pytest.fixture(scope="session")
def emulator_process() -> Iterator[EmulatorProcess]:
    proc = EmulatorProcess()
    yield proc
    proc.stop()


@pytest.fixture
def emulator(emulator_process: EmulatorProcess) -> EmulatorProcess:
    """A clean emulator for each test (data, webhooks and faults wiped)."""
    emulator_process.reset()
    return emulator_process
