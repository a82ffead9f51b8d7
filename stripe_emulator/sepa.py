# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (C) 2026 the payments_site authors; extends localstripe (C) 2017 Adrien Vergé.
#
# This program is free software: you can redistribute it and/or modify it under the terms of
# the GNU General Public License as published by the Free Software Foundation, either version 3
# of the License, or (at your option) any later version. This program is distributed in the hope
# that it will be useful, but WITHOUT ANY WARRANTY; without even the implied warranty of
# MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the LICENSE file in this folder.
"""SEPA Direct Debit: IBAN validation and the test IBANs of https://docs.stripe.com/testing.

SEPA Direct Debit is a delayed-notification method: a confirmed PaymentIntent goes to
`processing` and only later to `succeeded` or back to `requires_payment_method`. Stripe takes
seconds to minutes in test mode; the emulator waits `processing_delay_s()` seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass

from .cards import Decline
from .errors import StripeError, invalid_param, missing_param

DELAY_ENV = "STRIPE_EMULATOR_PROCESSING_DELAY_S"
DEFAULT_DELAY_S = 1.0
_delay_override: float | None = None
_FINGERPRINT_KEY = b"stripe-emulator-iban-fingerprint"

# IBAN lengths of the countries whose test IBANs the emulator knows.
IBAN_LENGTHS = {"AT": 20, "DE": 22}

# The last payment error of a debit the bank refused (the test IBANs "…failed").
ATTEMPT_FAILED = Decline(
    "payment_intent_payment_attempt_failed", "",
    "The latest payment attempt of this PaymentIntent has failed: the customer's bank did "
    "not honour the direct debit.")
INSUFFICIENT_FUNDS = Decline("insufficient_funds", "",
                             "The customer's account has insufficient funds to cover this "
                             "payment.")


@dataclass(frozen=True)
class Outcome:
    """What happens when a PaymentIntent is confirmed with this IBAN, after `processing`."""

    name: str
    failure: Decline | None = None


OUTCOMES: dict[str, Outcome] = {o.name: o for o in (
    Outcome("succeeds"),
    Outcome("fails", ATTEMPT_FAILED),
    Outcome("insufficient_funds", INSUFFICIENT_FUNDS),
)}

# https://docs.stripe.com/testing#sepa-direct-debit — "Test IBANs" (AT and DE).
TEST_IBANS: dict[str, str] = {
    "AT611904300234573201": "succeeds",
    "AT861904300235473202": "fails",
    "AT981904300002222227": "insufficient_funds",
    "DE89370400440532013000": "succeeds",
    "DE62370400440532013001": "fails",
    "DE65370400440002222227": "insufficient_funds",
}

# Stripe's test PaymentMethod tokens for the same IBANs (same page, "Token" column).
TEST_PAYMENT_METHODS: dict[str, str] = {
    "pm_success_at": "AT611904300234573201",
    "pm_failed_at": "AT861904300235473202",
    "pm_insufficientFunds_at": "AT981904300002222227",
    "pm_success_de": "DE89370400440532013000",
    "pm_failed_de": "DE62370400440532013001",
    "pm_insufficientFunds_de": "DE65370400440002222227",
}


def processing_delay_s() -> float:
    """Seconds a confirmed debit stays in `processing` (CLI flag, else env var, else 1 s)."""
    if _delay_override is not None:
        return _delay_override
    try:
        return max(0.0, float(os.environ.get(DELAY_ENV, DEFAULT_DELAY_S)))
    except ValueError:
        return DEFAULT_DELAY_S


def set_processing_delay(seconds: float | None) -> None:
    global _delay_override
    _delay_override = None if seconds is None else max(0.0, float(seconds))


def iban_checksum_ok(iban: str) -> bool:
    """ISO 13616 check digits: move the first four characters to the end, letters → 10..35,
    and the number mod 97 must be 1."""
    rearranged = iban[4:] + iban[:4]
    digits = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(digits) % 97 == 1


@dataclass(frozen=True)
class IbanDetails:
    """What the emulator keeps of an IBAN: display fields, a keyed fingerprint, the outcome."""

    country: str
    bank_code: str
    branch_code: str
    last4: str
    fingerprint: str
    outcome: str


def check_iban(iban: object) -> IbanDetails:
    if iban is None or iban == "":
        raise missing_param("sepa_debit[iban]")
    if not isinstance(iban, str):
        raise invalid_param("sepa_debit[iban]", "Invalid string: sepa_debit[iban]")
    value = re.sub(r"\s", "", iban).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}", value) \
            or IBAN_LENGTHS.get(value[:2], len(value)) != len(value) \
            or not iban_checksum_ok(value):
        raise invalid_param("sepa_debit[iban]", "The IBAN you provided is invalid.",
                            "invalid_bank_account_iban")
    outcome = TEST_IBANS.get(value)
    if outcome is None:
        raise StripeError(
            400, "The Stripe emulator only accepts the test IBANs listed on "
                 "https://docs.stripe.com/testing#sepa-direct-debit (AT and DE: success, "
                 "failed, insufficientFunds).", param="sepa_debit[iban]")
    if value.startswith("DE"):
        bank_code, branch_code = value[4:12], ""
    else:  # AT: a five-digit bank code (Bankleitzahl)
        bank_code, branch_code = value[4:9], ""
    return IbanDetails(
        country=value[:2], bank_code=bank_code, branch_code=branch_code, last4=value[-4:],
        fingerprint=hmac.new(_FINGERPRINT_KEY, value.encode(), hashlib.sha256).hexdigest()[:16],
        outcome=outcome)
