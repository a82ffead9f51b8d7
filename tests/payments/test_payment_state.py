"""apply_payment_intent / sync_payment_intent: status follows Stripe, forward only, once."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update

from payments_site import stripe_gateway
from payments_site.extensions import db
from payments_site.models import Payment, utcnow
from payments_site.queues import get_queue
from payments_site.services.payments import (
    CONFIRM_LEASE,
    apply_payment_intent,
    local_status,
    sync_payment_intent,
)
from tests.payments.conftest import VISA


def intent(intent_id: str, status: str, *, error_code: str | None = None,
           message: str | None = None) -> stripe_gateway.Intent:
    """A PaymentIntent as the gateway hands it over, in the given state."""
    error = stripe_gateway.PaymentError(code=error_code, decline_code=None, message=message,
                                        card=None) if error_code else None
    return stripe_gateway.Intent(id=intent_id, status=status, client_secret=None,
                                 our_payment_id=None, payment_method_id=None,
                                 payment_method=None, latest_charge_id=None, charge_card=None,
                                 last_payment_error=error)


def _new_card_payment(shopper, mug, save=False):
    body = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 1}], "save_payment_method": save}).get_json()
    return body["payment"]["stripe_payment_intent_id"], body["payment"]["id"]


def _pay(sc, intent_id, number=VISA):
    pm = sc.v1.payment_methods.create({"type": "card", "card": {
        "number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    try:
        sc.v1.payment_intents.confirm(intent_id, {"payment_method": pm.id})
    except Exception:  # noqa: BLE001 - a decline is recorded on the intent
        pass


def test_status_mapping(caplog):
    assert local_status(intent("pi_1", "requires_payment_method")) == "requires_payment_method"
    assert local_status(intent("pi_1", "requires_payment_method",
                               error_code="card_declined")) == "failed"
    assert local_status(intent("pi_1", "requires_confirmation")) == "requires_payment_method"
    for same in ("requires_action", "processing", "succeeded", "canceled"):
        assert local_status(intent("pi_1", same)) == same
    # Authorised, not yet captured: the money is on its way, so neither failed nor retryable.
    with caplog.at_level(logging.WARNING, logger="payments_site.services.payments"):
        assert local_status(intent("pi_1", "requires_capture")) == "processing"
    assert caplog.messages == []  # a status we know is no news for the operator
    # A status Stripe adds later: held as processing (never failed, never paid), and said.
    with caplog.at_level(logging.WARNING, logger="payments_site.services.payments"):
        assert local_status(intent("pi_1", "requires_reauthorization")) == "processing"
    assert caplog.messages == ["unknown PaymentIntent status 'requires_reauthorization'"]


def test_sync_applies_success_once_and_fulfils_once(shopper, mug, sc):
    intent_id, public_id = _new_card_payment(shopper, mug)
    _pay(sc, intent_id)
    receipts = get_queue("receipts")
    receipts.empty()
    first = sync_payment_intent(intent_id)
    second = sync_payment_intent(intent_id)
    assert first is not None and second is not None
    assert first.public_id == public_id and second.status == "succeeded"
    assert second.succeeded_at == first.succeeded_at
    assert receipts.count == 1  # the receipt job, enqueued by the one winning caller
    assert second.card_brand == "visa" and second.card_last4 == "4242"


def test_an_older_state_never_moves_a_success_back(shopper, mug, sc):
    intent_id, _ = _new_card_payment(shopper, mug)
    stale = stripe_gateway.retrieve_payment_intent(intent_id)  # requires_payment_method
    _pay(sc, intent_id)
    payment = sync_payment_intent(intent_id)
    assert payment.status == "succeeded"
    for late in (stale, intent(intent_id, "processing"),
                 intent(intent_id, "requires_payment_method", error_code="card_declined",
                        message="x")):
        assert apply_payment_intent(late).status == "succeeded"
    row = db.session.scalar(select(Payment))
    db.session.refresh(row)
    assert row.status == "succeeded" and row.failure_code is None


def test_decline_records_code_and_message(shopper, mug, sc):
    intent_id, _ = _new_card_payment(shopper, mug)
    _pay(sc, intent_id, "4000000000009995")
    payment = sync_payment_intent(intent_id)
    assert payment.status == "failed"
    assert payment.failure_decline_code == "insufficient_funds"
    assert "insufficient funds" in payment.failure_message
    assert payment.card_last4 == "9995"
    # The customer tries again on the same intent with a good card.
    _pay(sc, intent_id)
    payment = sync_payment_intent(intent_id)
    assert payment.status == "succeeded" and payment.failure_code is None
    assert payment.card_last4 == "4242"


def test_unknown_intents_are_ignored(app):
    assert apply_payment_intent(intent("pi_not_ours", "succeeded")) is None


def test_an_intent_is_linked_back_through_its_metadata(shopper, mug, sc):
    intent_id, public_id = _new_card_payment(shopper, mug)
    row = db.session.scalar(select(Payment).where(Payment.public_id == public_id))
    row.stripe_payment_intent_id = None  # as if we crashed before storing it
    db.session.commit()
    _pay(sc, intent_id)
    payment = sync_payment_intent(intent_id)
    assert payment is not None and payment.public_id == public_id
    assert payment.stripe_payment_intent_id == intent_id and payment.status == "succeeded"


def test_canceled_is_terminal(shopper, mug, sc):
    intent_id, _ = _new_card_payment(shopper, mug)
    sc.v1.payment_intents.cancel(intent_id)
    assert sync_payment_intent(intent_id).status == "canceled"
    assert apply_payment_intent(intent(intent_id, "requires_action")).status == "canceled"


def test_saving_the_card_is_deduplicated(shopper, customer, mug, sc):
    from payments_site.models import PaymentMethod

    for quantity in (1, 2):
        body = shopper.post("/api/payments/process", json={
            "items": [{"product_id": mug.id, "quantity": quantity}],
            "save_payment_method": True}).get_json()
        _pay(sc, body["payment"]["stripe_payment_intent_id"])
        sync_payment_intent(body["payment"]["stripe_payment_intent_id"])
    methods = list(db.session.scalars(select(PaymentMethod)))
    assert len(methods) == 1 and methods[0].is_default and methods[0].user_id == customer.id


def test_a_confirm_in_flight_is_not_undone_by_an_unconfirmed_intent(shopper, mug, sc):
    """While a server-side confirm holds the payment (`processing`, the intent not showing
    it yet), an unconfirmed or declined intent read meanwhile leaves the claim alone; a claim
    older than CONFIRM_LEASE, or one whose outcome was lost (needs_reconcile), follows it."""
    intent_id, public_id = _new_card_payment(shopper, mug)
    unconfirmed = stripe_gateway.retrieve_payment_intent(intent_id)
    declined = intent(intent_id, "requires_payment_method", error_code="card_declined",
                      message="Your card was declined.")

    def claimed(age: timedelta, *, lost: bool = False) -> None:
        db.session.execute(update(Payment).where(Payment.public_id == public_id).values(
            status="processing", needs_reconcile=lost, updated_at=utcnow() - age))
        db.session.commit()

    for state in (unconfirmed, declined):
        claimed(CONFIRM_LEASE - timedelta(seconds=20))
        assert apply_payment_intent(state).status == "processing"
    claimed(CONFIRM_LEASE + timedelta(seconds=20))
    assert apply_payment_intent(unconfirmed).status == "requires_payment_method"
    claimed(timedelta(seconds=1), lost=True)
    assert apply_payment_intent(declined).status == "failed"
    # Other states are Stripe's word on the confirm itself and always apply.
    claimed(timedelta(seconds=1))
    assert apply_payment_intent(intent(intent_id, "requires_action")).status == \
        "requires_action"


def test_what_stripe_says_is_recorded_as_it_fits(shopper, mug, sc):
    """A decline without a code reads as a card decline; Stripe's texts longer than our
    columns are cut to them, not refused; the charge is recorded only once it paid, with
    Radar's verdict, and a success clears the earlier failure."""
    intent_id, public_id = _new_card_payment(shopper, mug)

    def state(status, error=None, *, charge=None, outcome=None):
        return stripe_gateway.Intent(
            id=intent_id, status=status, client_secret=None, our_payment_id=None,
            payment_method_id=None, payment_method=None, latest_charge_id=charge,
            charge_card=None, last_payment_error=error, outcome=outcome)

    def row():
        db.session.expire_all()
        return db.session.scalar(select(Payment).where(Payment.public_id == public_id))

    no_code = stripe_gateway.PaymentError(code=None, decline_code=None, message=None,
                                          card=None)
    apply_payment_intent(state("requires_payment_method", no_code, charge="ch_declined"))
    payment = row()
    assert (payment.status, payment.failure_code, payment.failure_decline_code,
            payment.failure_message, payment.stripe_charge_id) == (
        "failed", "card_declined", None, "Your card was declined.", None)

    wordy = stripe_gateway.PaymentError(code="c" * 100, decline_code="d" * 100,
                                        message="m" * 1000, card=None)
    apply_payment_intent(state("requires_payment_method", wordy, charge="ch_declined"))
    payment = row()
    assert (payment.failure_code, payment.failure_decline_code, payment.failure_message) == (
        "c" * 64, "d" * 64, "m" * 500)

    radar = stripe_gateway.Outcome(type="t" * 40, risk_level="r" * 20, risk_score=12)
    apply_payment_intent(state("succeeded", charge="ch_paid", outcome=radar))
    payment = row()
    assert (payment.status, payment.stripe_charge_id) == ("succeeded", "ch_paid")
    assert (payment.outcome_type, payment.risk_level, payment.risk_score) == (
        "t" * 32, "r" * 16, 12)
    assert (payment.failure_code, payment.failure_decline_code, payment.failure_message) == (
        None, None, None)


def test_a_card_the_first_success_failed_to_save_is_saved_by_the_next_sync(shopper, customer,
                                                                          mug, sc):
    """The customer asked to keep the card; if saving it failed when the payment succeeded,
    any later sync of the (finished) payment saves it, and only while none is recorded."""
    from payments_site.models import PaymentMethod

    intent_id, public_id = _new_card_payment(shopper, mug, save=True)
    _pay(sc, intent_id)
    assert sync_payment_intent(intent_id).payment_method_id is not None
    db.session.execute(update(Payment).where(Payment.public_id == public_id).values(
        payment_method_id=None))
    db.session.execute(PaymentMethod.__table__.delete())
    db.session.commit()

    payment = sync_payment_intent(intent_id)
    [method] = db.session.scalars(select(PaymentMethod)).all()
    assert payment.status == "succeeded" and payment.payment_method_id == method.id
    assert method.user_id == customer.id and method.last4 == "4242"


def test_an_intent_naming_our_payment_that_is_not_its_own_moves_nothing(shopper, mug, sc):
    """Only the payment's own intent moves it: another intent whose metadata names the
    payment (a leftover of a lost create, or one from a create whose key was spent) is not
    ours to follow, however far along it is."""
    intent_id, public_id = _new_card_payment(shopper, mug)

    def other(create_attempt: int) -> stripe_gateway.Intent:
        return stripe_gateway.Intent(
            id=f"pi_other_{create_attempt}", status="succeeded", client_secret=None,
            our_payment_id=public_id, payment_method_id=None, payment_method=None,
            latest_charge_id="ch_other", charge_card=None, last_payment_error=None,
            our_create_attempt=create_attempt)

    assert apply_payment_intent(other(0)) is None  # the payment has its own intent
    db.session.execute(update(Payment).where(Payment.public_id == public_id).values(
        stripe_payment_intent_id=None))
    db.session.commit()
    assert apply_payment_intent(other(1)) is None  # made by a create that is not current
    db.session.expire_all()
    payment = db.session.scalar(select(Payment).where(Payment.public_id == public_id))
    assert (payment.status, payment.stripe_payment_intent_id, payment.stripe_charge_id) == (
        "requires_payment_method", None, None)
