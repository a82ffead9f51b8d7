"""services.methods without HTTP: dedupe, defaults, webhook sync, expiry, ownership."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from payments_site import stripe_gateway
from payments_site.errors import NotFound
from payments_site.extensions import db
from payments_site.models import PaymentMethod
from payments_site.services import methods
from payments_site.services.customers import ensure_stripe_customer
from tests.cards.conftest import MASTERCARD, VISA, new_card


def attached(sdk, user, number=VISA, **card):
    pm = new_card(sdk, number, **card)
    return sdk.v1.payment_methods.attach(pm.id, {"customer": ensure_stripe_customer(user)})


def read(pm):
    """The PaymentMethod as the gateway hands it to the services."""
    return stripe_gateway.retrieve_payment_method(pm.id)


def stored(user):
    db.session.expire_all()
    return [(m.stripe_payment_method_id, m.is_default) for m in methods.list_methods(user)]


@pytest.mark.parametrize(("exp", "today", "expected"), [
    ((2026, 11), date(2026, 11, 27), "expiring_soon"),   # ends this month
    ((2026, 12), date(2026, 11, 1), "expiring_soon"),    # ends next month
    ((2027, 1), date(2026, 11, 30), None),               # more than two months left
    ((2026, 10), date(2026, 11, 1), "expired"),
    ((2027, 1), date(2026, 12, 5), "expiring_soon"),     # across the year end
])
def test_expiry_status(exp, today, expected):
    method = PaymentMethod(exp_year=exp[0], exp_month=exp[1])
    assert methods.expiry_status(method, today) == expected


def test_upsert_first_card_is_default_and_stores_display_fields_only(app, customer, sdk):
    pm = attached(sdk, customer)
    method = methods.upsert_payment_method(customer, read(pm))
    assert (method.brand, method.last4, method.exp_month, method.exp_year, method.is_default) \
        == ("visa", "4242", 12, 2030, True)
    assert method.fingerprint == pm.card.fingerprint
    # Upserting the same PaymentMethod again (webhook after the page) changes nothing.
    again = methods.upsert_payment_method(customer, read(pm))
    assert again.id == method.id and stored(customer) == [(pm.id, True)]


def test_the_gateway_hands_over_plain_card_data(app, customer, sdk):
    pm = attached(sdk, customer, MASTERCARD)
    data = read(pm)
    assert data == stripe_gateway.PaymentMethod(
        id=pm.id, type="card", customer_id=customer.stripe_customer_id,
        card=stripe_gateway.Card(brand="mastercard", last4="4444", exp_month=12,
                                 exp_year=2030, fingerprint=pm.card.fingerprint))
    assert methods.upsert_payment_method(customer, data).brand == "mastercard"


def test_upsert_refuses_a_card_of_another_customer(app, customer, make_user, sdk):
    theirs = attached(sdk, make_user())
    ensure_stripe_customer(customer)
    with pytest.raises(NotFound):
        methods.upsert_payment_method(customer, read(theirs))
    assert stored(customer) == []


def test_get_owned_method_hides_other_users_cards(app, customer, make_user, sdk):
    other = make_user()
    pm = attached(sdk, other)
    methods.upsert_payment_method(other, read(pm))
    with pytest.raises(NotFound):
        methods.get_owned_method(customer, pm.id)
    assert methods.get_owned_method(other, pm.id).last4 == "4242"


def test_sync_attached_maps_the_customer_to_the_user(app, customer, sdk):
    pm = attached(sdk, customer)
    methods.sync_payment_method(pm.id)
    assert stored(customer) == [(pm.id, True)]


def test_sync_attached_ignores_unknown_customers_and_cards_detached_since(app, customer, sdk):
    stranger = sdk.v1.customers.create()
    pm = new_card(sdk)
    sdk.v1.payment_methods.attach(pm.id, {"customer": stranger.id})
    methods.sync_payment_method(pm.id)
    mine = attached(sdk, customer, MASTERCARD)
    sdk.v1.payment_methods.detach(mine.id)
    # A late (or replayed) attached event: Stripe now says detached, so nothing is saved.
    methods.sync_payment_method(mine.id)
    methods.sync_payment_method("pm_doesnotexist")
    assert db.session.scalars(select(PaymentMethod)).all() == []


def test_sync_detached_forgets_the_card_and_promotes_the_newest(app, customer, sdk):
    first = attached(sdk, customer)
    second = attached(sdk, customer, MASTERCARD)
    third = attached(sdk, customer, "5200828282828210")
    for pm in (first, second, third):
        methods.upsert_payment_method(customer, read(pm))
    assert stored(customer)[0] == (first.id, True)
    sdk.v1.payment_methods.detach(first.id)
    methods.sync_payment_method_detached(first.id)
    assert stored(customer) == [(third.id, True), (second.id, False)]
    methods.sync_payment_method_detached(first.id)  # a duplicate delivery: no effect
    methods.sync_payment_method_detached("pm_unknown")
    assert stored(customer) == [(third.id, True), (second.id, False)]
    assert sdk.v1.customers.retrieve(customer.stripe_customer_id) \
        .invoice_settings.default_payment_method == third.id


def test_remove_a_card_already_detached_at_stripe(app, customer, sdk):
    pm = attached(sdk, customer)
    methods.upsert_payment_method(customer, read(pm))
    sdk.v1.payment_methods.detach(pm.id)  # e.g. removed in Stripe's dashboard
    methods.remove_method(customer, pm.id)
    assert stored(customer) == []


def test_duplicate_with_an_earlier_expiry_keeps_the_saved_card(app, customer, sdk):
    kept = attached(sdk, customer, exp_year=2031)
    methods.upsert_payment_method(customer, read(kept))
    older = attached(sdk, customer, exp_year=2029)
    result = methods.upsert_payment_method(customer, read(older))
    assert result.stripe_payment_method_id == kept.id and result.exp_year == 2031
    assert stored(customer) == [(kept.id, True)]
    assert sdk.v1.payment_methods.retrieve(older.id).customer is None


def test_set_default_is_one_default_per_user(app, customer, make_user, sdk):
    other = make_user()
    their = attached(sdk, other)
    methods.upsert_payment_method(other, read(their))
    a, b = attached(sdk, customer), attached(sdk, customer, MASTERCARD)
    methods.upsert_payment_method(customer, read(a))
    methods.upsert_payment_method(customer, read(b))
    methods.set_default(customer, b.id)
    assert stored(customer) == [(b.id, True), (a.id, False)]
    assert stored(other) == [(their.id, True)]
    with pytest.raises(NotFound):
        methods.set_default(customer, their.id)
