# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (C) 2026 the payments_site authors; extends localstripe (C) 2017 Adrien Vergé.
#
# This program is free software: you can redistribute it and/or modify it under the terms of
# the GNU General Public License as published by the Free Software Foundation, either version 3
# of the License, or (at your option) any later version. This program is distributed in the hope
# that it will be useful, but WITHOUT ANY WARRANTY; without even the implied warranty of
# MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the LICENSE file in this folder.
"""Stripe's documented test cards: validation, brand detection and each card's behaviour."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from .errors import StripeError

# Fingerprints must be stable for one number and reveal nothing about it: a keyed hash.
_FINGERPRINT_KEY = b"stripe-emulator-fingerprint"


@dataclass(frozen=True)
class Decline:
    """How a charge (or a setup verification) with this card fails.

    `decline_code` is the issuer's reason, sent only for `card_declined` (Stripe sends none
    with `expired_card`, `incorrect_cvc` or `processing_error`); `param` is the card field
    Stripe names; `blocked` means Radar refused it before the card network saw it.
    """

    code: str
    decline_code: str | None
    message: str
    param: str | None = None
    blocked: bool = False


@dataclass(frozen=True)
class Behaviour:
    """What a test card does; stored on the PaymentMethod by name, never the number itself.

    three_ds: "none"; "setup_once" (needs 3DS until set up for future use, then never);
    "on_session" (3DS on every on-session payment; off-session works once set up);
    "always" (3DS every time, off-session payments fail with authentication_required);
    "on_session_only" (3DS on every on-session payment; off-session ones go through as if the
    card had been set up, …0446 "already set up").
    """

    name: str
    decline: Decline | None = None
    decline_at_setup: bool = True  # False: attaching works, charging fails (…0341)
    three_ds: str = "none"
    dispute_reason: str | None = None
    refund_flow: str = "succeeded"  # "pending" (…7726) or "fails" (…5126)
    risk_level: str = "normal"  # Radar's: "normal", "elevated" or "highest"

    @property
    def risk_score(self) -> int:
        return {"normal": 20, "elevated": 70, "highest": 95}[self.risk_level]


GENERIC = Decline("card_declined", "generic_decline", "Your card was declined.")
AUTH_REQUIRED = Decline("authentication_required", "authentication_required",
                        "Your card was declined. This transaction requires authentication.")

OK = Behaviour("ok")
BEHAVIOURS: dict[str, Behaviour] = {b.name: b for b in (
    OK,
    Behaviour("generic_decline", GENERIC),
    Behaviour("insufficient_funds", Decline("card_declined", "insufficient_funds",
                                            "Your card has insufficient funds.")),
    Behaviour("lost_card", Decline("card_declined", "lost_card", "Your card was declined.")),
    Behaviour("stolen_card", Decline("card_declined", "stolen_card", "Your card was declined.")),
    Behaviour("expired_card", Decline("expired_card", None, "Your card has expired.",
                                      param="exp_month")),
    Behaviour("incorrect_cvc", Decline("incorrect_cvc", None,
                                       "Your card's security code is incorrect.", param="cvc")),
    Behaviour("processing_error", Decline(
        "processing_error", None,
        "An error occurred while processing your card. Try again in a little bit.")),
    Behaviour("velocity_exceeded", Decline("card_declined", "card_velocity_exceeded",
                                           "Your card was declined.")),
    Behaviour("fraudulent", Decline("card_declined", "fraudulent", "Your card was declined.",
                                    blocked=True),
              decline_at_setup=False, risk_level="highest"),
    # Radar's default rule blocks the highest risk level.
    Behaviour("risk_highest", Decline("card_declined", "fraudulent", "Your card was declined.",
                                      blocked=True),
              decline_at_setup=False, risk_level="highest"),
    Behaviour("risk_elevated", risk_level="elevated"),
    Behaviour("charge_fails", GENERIC, decline_at_setup=False),
    Behaviour("3ds_setup_once", three_ds="setup_once"),
    Behaviour("3ds_on_session", three_ds="on_session"),
    Behaviour("3ds_already_set_up", three_ds="on_session_only"),
    Behaviour("3ds_always", three_ds="always"),
    Behaviour("3ds_then_decline", GENERIC, decline_at_setup=False, three_ds="always"),
    Behaviour("dispute_fraudulent", dispute_reason="fraudulent"),
    Behaviour("dispute_not_received", dispute_reason="product_not_received"),
    Behaviour("refund_pending", refund_flow="pending"),
    Behaviour("refund_fails", refund_flow="fails"),
)}

# https://docs.stripe.com/testing — numbers whose behaviour differs from "succeeds".
TEST_NUMBERS: dict[str, str] = {
    "4000000000000002": "generic_decline",
    "4000000000009995": "insufficient_funds",
    "4000000000009987": "lost_card",
    "4000000000009979": "stolen_card",
    "4000000000000069": "expired_card",
    "4000000000000127": "incorrect_cvc",
    "4000000000000119": "processing_error",
    "4100000000000019": "fraudulent",
    "4000000000004954": "risk_highest",
    "4000000000009235": "risk_elevated",
    "4000000000006975": "velocity_exceeded",
    "4000003800000446": "3ds_already_set_up",
    "4000000000000341": "charge_fails",
    "4000002500003155": "3ds_setup_once",
    "4000000000003220": "3ds_on_session",
    "4000000000003063": "3ds_on_session",
    "4000002760003184": "3ds_always",
    "4000008400001629": "3ds_then_decline",
    "4000000000000259": "dispute_fraudulent",
    "4000000000002685": "dispute_not_received",
    "4000000000007726": "refund_pending",
    "4000000000005126": "refund_fails",
}

# Stripe's "pm_card_*" test PaymentMethod ids, usable wherever a PaymentMethod id is.
TEST_PAYMENT_METHODS: dict[str, str] = {
    "pm_card_visa": "4242424242424242",
    "pm_card_visa_debit": "4000056655665556",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_amex": "378282246310005",
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeCustomerFail": "4000000000000341",
    "pm_card_threeDSecure2Required": "4000000000003220",
    "pm_card_authenticationRequiredOnSetup": "4000002500003155",
    "pm_card_authenticationRequired": "4000002760003184",
    "pm_card_createDispute": "4000000000000259",
    "pm_card_riskLevelHighest": "4000000000004954",
    "pm_card_riskLevelElevated": "4000000000009235",
    "pm_card_chargeDeclinedFraudulent": "4100000000000019",
    "pm_card_chargeDeclinedVelocityLimitExceeded": "4000000000006975",
}

DEBIT_NUMBERS = {"4000056655665556", "5200828282828210"}


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def brand_of(number: str) -> str:
    """Brand from the IIN prefix (the brands Stripe's test cards cover)."""
    two, four = int(number[:2]), int(number[:4])
    if number.startswith("4"):
        return "visa"
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return "mastercard"
    if two in (34, 37):
        return "amex"
    if number.startswith(("6011", "65", "644", "645", "646", "647", "648", "649")):
        return "discover"
    if two == 35:
        return "jcb"
    if two in (30, 36, 38, 39):
        return "diners"
    if two == 62:
        return "unionpay"
    return "unknown"


def fingerprint(number: str) -> str:
    return hmac.new(_FINGERPRINT_KEY, number.encode(), hashlib.sha256).hexdigest()[:16]


def card_error(message: str, code: str, param: str) -> StripeError:
    return StripeError(402, message, type="card_error", code=code, param=param)


@dataclass(frozen=True)
class CardDetails:
    """What the emulator keeps of a card: display fields, fingerprint and behaviour name."""

    brand: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str
    funding: str
    behaviour: str


def check_card(number: object, exp_month: object, exp_year: object, cvc: object,
               now_year: int, now_month: int) -> CardDetails:
    """Validate raw card fields as Stripe does when creating a PaymentMethod.

    Only format problems fail here (invalid/incorrect number, bad expiry, bad CVC); declines
    happen later, at charge time, exactly like Stripe.
    """
    if number is None or number == "":
        raise StripeError(400, "Missing required param: card[number].",
                          param="card[number]", code="parameter_missing")
    digits = str(number).replace(" ", "")
    if not digits.isdigit() or not 12 <= len(digits) <= 19:
        raise card_error("Your card number is invalid.", "invalid_number", "number")
    if not luhn_ok(digits):
        raise card_error("Your card number is incorrect.", "incorrect_number", "number")
    try:
        month = int(str(exp_month))
    except ValueError:
        month = 0
    if not 1 <= month <= 12:
        raise card_error("Your card's expiration month is invalid.", "invalid_expiry_month",
                         "exp_month")
    try:
        year = int(str(exp_year))
    except ValueError:
        year = 0
    if 0 < year < 100:
        year += 2000
    if year < now_year or (year == now_year and month < now_month) or year > now_year + 50:
        raise card_error("Your card's expiration year is invalid.", "invalid_expiry_year",
                         "exp_year")
    brand = brand_of(digits)
    if cvc not in (None, ""):
        want = 4 if brand == "amex" else 3
        if not str(cvc).isdigit() or len(str(cvc)) not in (want, 3):
            raise card_error("Your card's security code is invalid.", "invalid_cvc", "cvc")
    return CardDetails(
        brand=brand, last4=digits[-4:], exp_month=month, exp_year=year,
        fingerprint=fingerprint(digits),
        funding="debit" if digits in DEBIT_NUMBERS else "credit",
        behaviour=TEST_NUMBERS.get(digits, "ok"))
