"""Saved cards through webhooks: Stripe's card events, signed, received and run by the worker.

Each event is the one the emulator emitted for a real change on Stripe's side (a card
attached or detached there, a SetupIntent confirmed), delivered to POST /api/webhooks/stripe
with a real signature and then processed by the queued job, as in production. What is
checked is what the customer sees: their card list.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import stripe
from sqlalchemy import select

from payments_site.extensions import db
from payments_site.models import PaymentMethod, WebhookEvent
from payments_site.queues import get_queue
from payments_site.services import webhooks
from payments_site.services.customers import ensure_stripe_customer
from tests.cards.conftest import AMEX, DECLINED, MASTERCARD, THREE_DS, VISA, new_card, seti_id
from tests.webhooks.conftest import event_rows, post_event, raw

LIST = "/api/payments/methods/list"


def _deliver(client: Any, run_jobs: Any, event: dict[str, Any]) -> None:
    """POST the signed event, then let the worker run its job."""
    assert post_event(client, raw(event)).status_code == 200
    run_jobs()


def _cards(session: Any) -> list[tuple[str, bool]]:
    """The customer's card list as the API shows it: (pm id, is_default), default first."""
    response = session.get(LIST)
    assert response.status_code == 200
    return [(card["id"], card["is_default"]) for card in response.get_json()["data"]]


def _attached_at_stripe(sc: stripe.StripeClient, customer_id: str, number: str,
                        **card: Any) -> str:
    """A card added on Stripe's side (the dashboard, another integration): not via our API."""
    pm = new_card(sc, number, **card)
    return str(sc.v1.payment_methods.attach(pm.id, {"customer": customer_id}).id)


def _stripe_cards(sc: stripe.StripeClient, customer_id: str) -> set[str]:
    return {pm.id for pm in sc.v1.customers.payment_methods.list(customer_id).data}


def test_a_card_attached_at_stripe_appears_in_the_list(client, customer, login_as, sc,
                                                       stripe_events, run_jobs):
    session = login_as(customer)
    pm_id = _attached_at_stripe(sc, ensure_stripe_customer(customer), VISA)
    event = stripe_events.one("payment_method.attached", pm_id)
    assert post_event(client, raw(event)).status_code == 200
    assert _cards(session) == []  # the route only stores and queues; the worker applies it
    run_jobs()
    [card] = session.get(LIST).get_json()["data"]
    assert card == {"id": pm_id, "brand": "visa", "last4": "4242", "exp_month": 12,
                    "exp_year": 2030, "is_default": True}
    assert [(r.type, r.status) for r in event_rows()] == \
        [("payment_method.attached", "processed")]


def test_setup_intent_succeeded_saves_the_card_without_the_page(client, customer, login_as,
                                                                sc, stripe_events, run_jobs):
    """The customer confirmed the SetupIntent, then closed the tab before the page saved the
    card: the webhook saves it, and the page's late save finds it, not a second one."""
    session = login_as(customer)
    secret = session.post("/api/payments/methods/setup-intent").get_json()["client_secret"]
    intent = sc.v1.setup_intents.confirm(seti_id(secret),
                                         {"payment_method": new_card(sc, MASTERCARD).id})
    assert intent.status == "succeeded"
    _deliver(client, run_jobs, stripe_events.one("setup_intent.succeeded", intent.id))
    assert _cards(session) == [(intent.payment_method, True)]
    late = session.post("/api/payments/methods/save", json={"setup_intent_id": intent.id})
    assert late.status_code == 201
    assert _cards(session) == [(intent.payment_method, True)]


def test_a_card_detached_at_stripe_disappears_and_the_newest_remaining_becomes_default(
        client, customer, login_as, sc, stripe_events, run_jobs):
    session = login_as(customer)
    customer_id = ensure_stripe_customer(customer)
    oldest, middle, newest = (_attached_at_stripe(sc, customer_id, number)
                              for number in (VISA, MASTERCARD, AMEX))
    for pm_id in (oldest, middle, newest):
        _deliver(client, run_jobs, stripe_events.one("payment_method.attached", pm_id))
    assert _cards(session) == [(oldest, True), (newest, False), (middle, False)]

    sc.v1.payment_methods.detach(oldest)  # removed on Stripe's side
    _deliver(client, run_jobs, stripe_events.one("payment_method.detached", oldest))
    assert _cards(session) == [(newest, True), (middle, False)]
    stripe_customer = sc.v1.customers.retrieve(customer_id)
    assert stripe_customer.invoice_settings.default_payment_method == newest

    sc.v1.payment_methods.detach(middle)  # not the default: the default stays
    _deliver(client, run_jobs, stripe_events.one("payment_method.detached", middle))
    assert _cards(session) == [(newest, True)]
    assert {pm_id for pm_id, _ in _cards(session)} == _stripe_cards(sc, customer_id)


def test_detached_delivered_before_attached_ends_as_stripes_state(client, customer, login_as,
                                                                  sc, stripe_events, run_jobs):
    session = login_as(customer)
    customer_id = ensure_stripe_customer(customer)
    kept = _attached_at_stripe(sc, customer_id, VISA)
    gone = _attached_at_stripe(sc, customer_id, MASTERCARD)
    sc.v1.payment_methods.detach(gone)
    # Newest first: the detach arrives before the attach it undoes.
    for event in (stripe_events.one("payment_method.detached", gone),
                  stripe_events.one("payment_method.attached", gone),
                  stripe_events.one("payment_method.attached", kept)):
        _deliver(client, run_jobs, event)
    assert _cards(session) == [(kept, True)]
    assert _stripe_cards(sc, customer_id) == {kept}
    assert all(r.status == "processed" for r in event_rows())


def test_a_card_updated_at_stripe_shows_its_new_expiry(client, customer, login_as, sc,
                                                       stripe_events, run_jobs):
    session = login_as(customer)
    pm_id = _attached_at_stripe(sc, ensure_stripe_customer(customer), VISA)
    _deliver(client, run_jobs, stripe_events.one("payment_method.attached", pm_id))
    sc.v1.payment_methods.update(pm_id, {"card": {"exp_month": 3, "exp_year": 2033}})
    _deliver(client, run_jobs, stripe_events.one("payment_method.updated", pm_id))
    [card] = session.get(LIST).get_json()["data"]
    assert (card["id"], card["exp_month"], card["exp_year"]) == (pm_id, 3, 2033)


def _failed_setup(session: Any, sc: stripe.StripeClient, outcome: str) -> str:
    """A SetupIntent made through our API that ends `outcome` at Stripe; its id."""
    secret = session.post("/api/payments/methods/setup-intent").get_json()["client_secret"]
    intent_id = seti_id(secret)
    if outcome == "setup_failed":
        with pytest.raises(stripe.CardError):
            sc.v1.setup_intents.confirm(intent_id, {"payment_method": new_card(sc, DECLINED).id})
    elif outcome == "requires_action":
        confirmed = sc.v1.setup_intents.confirm(
            intent_id, {"payment_method": new_card(sc, THREE_DS).id})
        assert confirmed.status == "requires_action"
    else:
        sc.v1.setup_intents.cancel(intent_id)
    return intent_id


@pytest.mark.parametrize("outcome", ["setup_failed", "requires_action", "canceled"])
def test_setup_intents_that_saved_no_card_are_ignored_on_purpose(
        client, customer, login_as, sc, stripe_events, run_jobs, caplog, outcome):
    session = login_as(customer)
    intent_id = _failed_setup(session, sc, outcome)
    event = stripe_events.one(f"setup_intent.{outcome}", intent_id)
    with caplog.at_level(logging.INFO, logger="payments_site.services.webhooks"):
        assert post_event(client, raw(event)).status_code == 200
    [row] = event_rows()
    assert (row.type, row.status) == (f"setup_intent.{outcome}", "ignored")
    assert row.processed_at is not None and row.last_error is None
    assert get_queue("webhooks").count == 0  # no job: there is nothing to do
    reason = webhooks.IGNORED_ON_PURPOSE[f"setup_intent.{outcome}"]
    assert any(event["id"] in r.getMessage() and "ignored on purpose" in r.getMessage()
               and reason in r.getMessage() for r in caplog.records)
    assert run_jobs() == 0
    assert _cards(session) == []
    assert db.session.scalars(select(PaymentMethod)).all() == []
    db.session.expire_all()
    assert db.session.get_one(WebhookEvent, row.id).status == "ignored"


def test_an_event_type_ignored_on_purpose_cannot_also_get_a_handler():
    assert not set(webhooks.IGNORED_ON_PURPOSE) & set(webhooks.HANDLERS)
    with pytest.raises(ValueError, match="ignored on purpose"):
        webhooks.handles("setup_intent.setup_failed")(lambda event: None)
