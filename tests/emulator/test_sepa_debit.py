"""SEPA Direct Debit: a delayed-notification method (`processing`, then the bank's answer).

The test IBANs and their outcomes are Stripe's: https://docs.stripe.com/testing#sepa-direct-debit
("The PaymentIntent status transitions from `processing` to `succeeded`" / "… to
`requires_payment_method`"). The emulator settles after a short delay (1 s by default,
`STRIPE_EMULATOR_PROCESSING_DELAY_S` or `--processing-delay`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import stripe

from payments_site.devtools.stack import free_port
from tests.emulator.helpers import card, client, start_emulator, stop_emulator

SUCCEEDS = "DE89370400440532013000"
FAILS = "DE62370400440532013001"


def sepa(sc: stripe.StripeClient, iban: str, **extra: object) -> stripe.PaymentMethod:
    return sc.v1.payment_methods.create(params={
        "type": "sepa_debit", "sepa_debit": {"iban": iban},
        "billing_details": {"name": "Jenny Rosen", "email": "jenny@example.com"},
        **extra})


def debit(sc: stripe.StripeClient, pm: str, **extra: object) -> stripe.PaymentIntent:
    return sc.v1.payment_intents.create(params={
        "amount": 1099, "currency": "eur", "allowed_payment_method_types": ["sepa_debit"],
        "payment_method": pm, "confirm": True, **extra})


def wait_status(sc: stripe.StripeClient, pi_id: str, status: str,
                timeout: float = 6.0) -> stripe.PaymentIntent:
    deadline = time.monotonic() + timeout
    while True:
        pi = sc.v1.payment_intents.retrieve(pi_id)
        if pi.status == status:
            return pi
        assert time.monotonic() < deadline, f"{pi_id} still {pi.status}, wanted {status}"
        time.sleep(0.05)


def test_payment_method_keeps_no_iban(sc: stripe.StripeClient) -> None:
    """A sepa_debit PaymentMethod shows bank_code, country, last4 and a fingerprint (never
    the IBAN); the same IBAN gives the same fingerprint.

    https://docs.stripe.com/api/payment_methods/object#payment_method_object-sepa_debit
    """
    pm = sepa(sc, "DE89 3704 0044 0532 0130 00")  # spaces are allowed, as on Stripe
    assert pm.id.startswith("pm_") and pm.type == "sepa_debit"
    details = pm.sepa_debit
    assert (details.country, details.bank_code, details.last4) == ("DE", "37040044", "3000")
    assert details.fingerprint and details.fingerprint == sepa(sc, SUCCEEDS).sepa_debit.fingerprint
    assert details.fingerprint != sepa(sc, FAILS).sepa_debit.fingerprint
    assert "card" not in pm
    assert pm.billing_details.name == "Jenny Rosen"
    text = json.dumps(sc.v1.payment_methods.retrieve(pm.id).to_dict())
    assert SUCCEEDS not in text and "0532013000" not in text


def test_invalid_iban_rejected(sc: stripe.StripeClient) -> None:
    """An IBAN whose check digits are wrong, or a missing one, is a 400 on sepa_debit[iban].

    https://docs.stripe.com/api/payment_methods/create#create_payment_method-sepa_debit-iban
    """
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sepa(sc, "DE89370400440532013001")  # one digit off: mod-97 fails
    assert exc.value.http_status == 400 and exc.value.param == "sepa_debit[iban]"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.payment_methods.create(params={"type": "sepa_debit", "sepa_debit": {}})
    assert exc.value.http_status == 400 and exc.value.code == "parameter_missing"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.payment_methods.create(params={"type": "sepa_debit",
                                             "card": {"number": "4242424242424242"}})
    assert exc.value.param == "card"


def test_debit_goes_processing_then_succeeded(sc: stripe.StripeClient) -> None:
    """DE89370400440532013000: the confirm answers `processing` at once (the charge is
    `pending`), then the PaymentIntent becomes `succeeded` and the charge `succeeded`.

    https://docs.stripe.com/testing#sepa-direct-debit and
    https://docs.stripe.com/payments/payment-intents/verifying-status
    """
    pm = sepa(sc, SUCCEEDS)
    started = time.monotonic()
    pi = debit(sc, pm.id)
    assert time.monotonic() - started < 0.9  # the HTTP answer does not wait for the bank
    assert pi.status == "processing" and pi.amount_received == 0
    assert pi.last_payment_error is None and pi.payment_method == pm.id
    charge = sc.v1.charges.retrieve(pi.latest_charge)
    assert charge.status == "pending" and charge.paid is False
    assert charge.payment_method_details.type == "sepa_debit"
    assert charge.payment_method_details.sepa_debit.last4 == "3000"
    assert charge.payment_method_details.sepa_debit.mandate.startswith("mandate_")
    with pytest.raises(stripe.InvalidRequestError) as exc:  # nothing to refund yet
        sc.v1.refunds.create(params={"payment_intent": pi.id})
    assert exc.value.http_status == 400
    pi = wait_status(sc, pi.id, "succeeded")
    assert pi.amount_received == 1099
    charge = sc.v1.charges.retrieve(pi.latest_charge)
    assert charge.status == "succeeded" and charge.paid is True and charge.captured is True
    refund = sc.v1.refunds.create(params={"payment_intent": pi.id, "amount": 99})
    assert refund.status == "succeeded" and refund.charge == charge.id


def test_debit_goes_processing_then_requires_payment_method(sc: stripe.StripeClient) -> None:
    """DE62370400440532013001: `processing`, then back to `requires_payment_method` with a
    last_payment_error; the charge is `failed`.

    https://docs.stripe.com/testing#sepa-direct-debit
    """
    pi = debit(sc, sepa(sc, FAILS).id)
    assert pi.status == "processing"
    pi = wait_status(sc, pi.id, "requires_payment_method")
    error = pi.last_payment_error
    assert error is not None and error.code == "payment_intent_payment_attempt_failed"
    assert error.message and error.charge == pi.latest_charge
    assert error.payment_method.type == "sepa_debit"
    assert pi.payment_method is None and pi.amount_received == 0
    charge = sc.v1.charges.retrieve(pi.latest_charge)
    assert charge.status == "failed" and charge.paid is False
    assert charge.failure_code == "payment_intent_payment_attempt_failed"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.refunds.create(params={"payment_intent": pi.id})
    assert exc.value.http_status == 400
    # Like any requires_payment_method intent it can be confirmed again with another method.
    pi = sc.v1.payment_intents.confirm(pi.id, params={"payment_method": sepa(sc, SUCCEEDS).id})
    assert pi.status == "processing"
    wait_status(sc, pi.id, "succeeded")


def test_insufficient_funds_iban_and_test_tokens(sc: stripe.StripeClient) -> None:
    """The test tokens pm_success_de / pm_insufficientFunds_de stand for the test IBANs; the
    latter fails with an `insufficient_funds` failure code.

    https://docs.stripe.com/testing#sepa-direct-debit ("Token" column)
    """
    ok = debit(sc, "pm_success_de")
    bad = debit(sc, "pm_insufficientFunds_de")
    assert ok.status == bad.status == "processing"
    wait_status(sc, ok.id, "succeeded")
    bad = wait_status(sc, bad.id, "requires_payment_method")
    assert bad.last_payment_error.code == "insufficient_funds"
    assert sc.v1.charges.retrieve(bad.latest_charge).failure_code == "insufficient_funds"


def test_allowed_only_where_the_intent_allows_sepa_debit(sc: stripe.StripeClient) -> None:
    """sepa_debit must be in payment_method_types, or come with automatic payment methods
    (eligible only for eur); it takes eur only and has no manual capture; a card is refused
    on a sepa_debit-only intent.

    https://docs.stripe.com/payments/sepa-debit/accept-a-payment ("Supported currencies:
    eur") and https://docs.stripe.com/payments/payment-methods/dynamic-payment-methods
    """
    pm = sepa(sc, SUCCEEDS).id
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.payment_intents.create(params={
            "amount": 1099, "currency": "eur", "allowed_payment_method_types": ["card"],
            "payment_method": pm, "confirm": True})
    assert exc.value.http_status == 400
    assert exc.value.code == "payment_intent_incompatible_payment_method"
    card_only = sc.v1.payment_intents.create(params={
        "amount": 1099, "currency": "eur", "allowed_payment_method_types": ["card"]})
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.payment_intents.confirm(card_only.id, params={"payment_method": pm})
    assert exc.value.code == "payment_intent_incompatible_payment_method"
    assert sc.v1.payment_intents.retrieve(card_only.id).status == "requires_payment_method"
    # Automatic payment methods: eligible for eur, not for usd.
    auto = sc.v1.payment_intents.create(params={
        "amount": 1099, "currency": "eur", "automatic_payment_methods": {"enabled": True}})
    assert set(auto.payment_method_types) == {"card", "sepa_debit"}
    auto = sc.v1.payment_intents.confirm(auto.id, params={"payment_method": pm})
    assert auto.status == "processing"
    usd = sc.v1.payment_intents.create(params={
        "amount": 1099, "currency": "usd", "automatic_payment_methods": {"enabled": True}})
    assert usd.payment_method_types == ["card"]
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.payment_intents.confirm(usd.id, params={"payment_method": pm})
    assert exc.value.code == "payment_intent_incompatible_payment_method"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.payment_intents.create(params={"amount": 1099, "currency": "usd",
                                             "allowed_payment_method_types": ["sepa_debit"]})
    assert exc.value.http_status == 400 and "eur" in str(exc.value.user_message)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        debit(sc, pm, capture_method="manual")
    assert exc.value.param == "capture_method"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        debit(sc, card(sc, "4242424242424242").id)
    assert exc.value.code == "payment_intent_incompatible_payment_method"


def test_saved_iban_setup_then_off_session_debit(sc: stripe.StripeClient) -> None:
    """Collecting the IBAN with a SetupIntent succeeds for every test IBAN (they differ only
    when charged); the saved method lists under type=sepa_debit, not type=card; a later
    off-session debit goes through `processing`.

    https://docs.stripe.com/payments/sepa-debit/set-up-payment and
    https://docs.stripe.com/api/payment_methods/customer_list
    """
    cus = sc.v1.customers.create()
    saved_card = card(sc, "4242424242424242")
    sc.v1.payment_methods.attach(saved_card.id, params={"customer": cus.id})
    si = sc.v1.setup_intents.create(params={
        "customer": cus.id, "allowed_payment_method_types": ["sepa_debit"], "confirm": True,
        "payment_method": sepa(sc, FAILS).id})
    assert si.status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError):
        sc.v1.setup_intents.create(params={
            "customer": cus.id, "allowed_payment_method_types": ["card"], "confirm": True,
            "payment_method": sepa(sc, SUCCEEDS).id})
    debits = sc.v1.customers.payment_methods.list(cus.id, params={"type": "sepa_debit"}).data
    assert [d.id for d in debits] == [si.payment_method]
    cards = sc.v1.customers.payment_methods.list(cus.id, params={"type": "card"}).data
    assert [c.id for c in cards] == [saved_card.id]
    assert len(sc.v1.customers.payment_methods.list(cus.id).data) == 2
    pi = debit(sc, si.payment_method, customer=cus.id, off_session=True)
    assert pi.status == "processing"
    wait_status(sc, pi.id, "requires_payment_method")


def test_setup_future_usage_attaches_after_success(sc: stripe.StripeClient) -> None:
    """With setup_future_usage the IBAN is saved on the customer once the debit succeeds.

    https://docs.stripe.com/payments/sepa-debit/accept-a-payment ("setup_future_usage")
    """
    cus = sc.v1.customers.create()
    pm = sepa(sc, SUCCEEDS)
    pi = debit(sc, pm.id, customer=cus.id, setup_future_usage="off_session")
    wait_status(sc, pi.id, "succeeded")
    assert sc.v1.payment_methods.retrieve(pm.id).customer == cus.id




def test_processing_delay_is_configurable() -> None:
    """STRIPE_EMULATOR_PROCESSING_DELAY_S sets how long `processing` lasts; the
    --processing-delay flag overrides it. (Stripe's own test delays are seconds to minutes:
    https://docs.stripe.com/testing#sepa-direct-debit, "after at least three minutes".)
    """
    port = free_port()
    proc = start_emulator(port, env={"STRIPE_EMULATOR_PROCESSING_DELAY_S": "2.5"})
    try:
        sc = client(f"http://127.0.0.1:{port}")
        pi = debit(sc, "pm_success_de")
        time.sleep(1.5)  # longer than the 1 s default
        assert sc.v1.payment_intents.retrieve(pi.id).status == "processing"
        wait_status(sc, pi.id, "succeeded", timeout=4)
    finally:
        stop_emulator(proc)
    proc = start_emulator(port, "--processing-delay", "0",
                  env={"STRIPE_EMULATOR_PROCESSING_DELAY_S": "30"})
    try:
        sc = client(f"http://127.0.0.1:{port}")
        pi = debit(sc, "pm_success_de")
        assert pi.status == "processing"
        wait_status(sc, pi.id, "succeeded", timeout=0.8)
    finally:
        stop_emulator(proc)


def test_processing_debit_settles_after_restart(tmp_path: Path) -> None:
    """With --data DIR, a debit still `processing` when the emulator stops settles after it
    restarts (Stripe keeps processing payments while your server is down).

    https://docs.stripe.com/payments/payment-intents/verifying-status
    """
    port = free_port()
    proc = start_emulator(port, "--data", str(tmp_path), "--processing-delay", "30")
    try:
        sc = client(f"http://127.0.0.1:{port}")
        pi = debit(sc, "pm_failed_de")
        assert pi.status == "processing"
    finally:
        stop_emulator(proc)
    proc = start_emulator(port, "--data", str(tmp_path), "--processing-delay", "0.2")
    try:
        sc = client(f"http://127.0.0.1:{port}")
        pi = wait_status(sc, pi.id, "requires_payment_method", timeout=3)
        assert pi.last_payment_error.code == "payment_intent_payment_attempt_failed"
    finally:
        stop_emulator(proc)
