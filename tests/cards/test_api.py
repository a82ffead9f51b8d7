"""The saved-card JSON routes (/api/payments/methods/*): API.md shapes, ownership, failures."""

from __future__ import annotations

import pytest
import requests
import stripe
from sqlalchemy import select

from payments_site.extensions import db
from payments_site.models import Payment, PaymentMethod, User
from tests.cards.conftest import (
    DECLINED,
    MASTERCARD,
    THREE_DS,
    VISA,
    authenticate_setup,
    new_card,
    seti_id,
)

BASE = "/api/payments/methods"


def rows(user=None):
    query = select(PaymentMethod).order_by(PaymentMethod.id)
    if user is not None:
        query = query.where(PaymentMethod.user_id == user.id)
    db.session.expire_all()
    return list(db.session.scalars(query))


def stripe_customer_id(user) -> str:
    db.session.expire_all()
    return str(db.session.get(User, user.id).stripe_customer_id)


def attached_ids(sdk, customer_id):
    return {pm.id for pm in sdk.v1.customers.payment_methods.list(customer_id,
                                                                  {"type": "card"}).data}


# --- setup-intent ---------------------------------------------------------------------------

def test_setup_intent_creates_the_stripe_customer_once(login_as, customer, sdk):
    session = login_as(customer)
    first = session.post(f"{BASE}/setup-intent", json={})
    second = session.post(f"{BASE}/setup-intent")
    assert first.status_code == second.status_code == 201
    secret = first.get_json()["client_secret"]
    assert secret.startswith("seti_") and "_secret_" in secret
    assert set(first.get_json()) == {"client_secret"}
    customer_id = stripe_customer_id(customer)
    assert customer_id.startswith("cus_")
    intents = [sdk.v1.setup_intents.retrieve(seti_id(r.get_json()["client_secret"]))
               for r in (first, second)]
    assert intents[0].id != intents[1].id
    assert {i.customer for i in intents} == {customer_id}
    assert intents[0].usage == "off_session"


def test_routes_need_login(client):
    response = client.get(f"{BASE}/list")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthenticated"
    # Without a session there is no CSRF token either: refused before anything runs.
    assert client.post(f"{BASE}/setup-intent", json={}).status_code in (401, 403)


# --- save -------------------------------------------------------------------------------------

def test_save_from_setup_intent_stores_display_fields_and_first_card_is_default(
        login_as, customer, sdk, confirmed_setup):
    session = login_as(customer)
    response = session.post(f"{BASE}/save",
                            json={"setup_intent_id": confirmed_setup(session, VISA)})
    assert response.status_code == 201
    method = response.get_json()["payment_method"]
    assert method["id"].startswith("pm_")
    assert {k: v for k, v in method.items() if k != "id"} == {
        "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030,
        "is_default": True}
    [row] = rows(customer)
    assert row.stripe_payment_method_id == method["id"] and row.is_default
    assert row.fingerprint
    customer_id = stripe_customer_id(customer)
    assert attached_ids(sdk, customer_id) == {method["id"]}
    assert sdk.v1.customers.retrieve(customer_id).invoice_settings.default_payment_method \
        == method["id"]


def test_save_by_payment_method_id_attaches_an_unattached_card(login_as, customer, sdk):
    session = login_as(customer)
    pm = new_card(sdk, MASTERCARD)
    response = session.post(f"{BASE}/save", json={"payment_method_id": pm.id})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["payment_method"]["brand"] == "mastercard"
    assert sdk.v1.payment_methods.retrieve(pm.id).customer == stripe_customer_id(customer)
    assert [r.stripe_payment_method_id for r in rows(customer)] == [pm.id]


def test_second_card_is_not_default_unless_asked(login_as, customer, save_card):
    session = login_as(customer)
    first = save_card(session, VISA)
    second = save_card(session, MASTERCARD)
    assert first["is_default"] and not second["is_default"]
    third = save_card(session, "5200828282828210", make_default=True)
    assert third["is_default"]
    assert [r.stripe_payment_method_id for r in rows(customer) if r.is_default] == [third["id"]]


def test_same_card_saved_twice_is_one_entry(login_as, customer, sdk, save_card):
    """Same fingerprint, same expiry: the card already saved is kept; the duplicate is
    detached at Stripe."""
    session = login_as(customer)
    first = save_card(session, VISA)
    again = save_card(session, VISA)
    assert again["id"] == first["id"]
    assert [r.stripe_payment_method_id for r in rows(customer)] == [first["id"]]
    assert attached_ids(sdk, stripe_customer_id(customer)) == {first["id"]}
    listed = session.get(f"{BASE}/list").get_json()["data"]
    assert [m["id"] for m in listed] == [first["id"]]


def test_same_card_with_a_later_expiry_replaces_the_old_one(login_as, customer, sdk,
                                                           save_card):
    """A reissued card (same number, new expiry): the newer PaymentMethod wins, the row
    (and its default flag) stays, the old PaymentMethod is detached."""
    session = login_as(customer)
    old = save_card(session, VISA, exp_year=2029)
    row_id = rows(customer)[0].id
    new = save_card(session, VISA, exp_year=2031)
    assert new["id"] != old["id"] and new["exp_year"] == 2031 and new["is_default"]
    [row] = rows(customer)
    assert (row.id, row.stripe_payment_method_id, row.exp_year) == (row_id, new["id"], 2031)
    customer_id = stripe_customer_id(customer)
    assert attached_ids(sdk, customer_id) == {new["id"]}
    assert sdk.v1.customers.retrieve(customer_id).invoice_settings.default_payment_method \
        == new["id"]


def test_declined_card_at_setup_is_a_clear_402_and_nothing_is_saved(login_as, customer, sdk):
    session = login_as(customer)
    secret = session.post(f"{BASE}/setup-intent").get_json()["client_secret"]
    with pytest.raises(stripe.CardError):
        sdk.v1.setup_intents.confirm(seti_id(secret),
                                     {"payment_method": new_card(sdk, DECLINED).id})
    response = session.post(f"{BASE}/save", json={"setup_intent_id": seti_id(secret)})
    assert response.status_code == 402
    error = response.get_json()["error"]
    assert error["code"] == "card_declined"
    assert error["decline_code"] == "generic_decline"
    assert error["message"] == "Your card was declined."
    assert rows() == []


def test_declined_card_by_payment_method_id_is_402(login_as, customer, sdk):
    session = login_as(customer)
    pm = new_card(sdk, DECLINED)
    response = session.post(f"{BASE}/save", json={"payment_method_id": pm.id})
    assert response.status_code == 402
    assert response.get_json()["error"]["code"] == "card_declined"
    assert rows() == []
    assert sdk.v1.payment_methods.retrieve(pm.id).customer is None


def test_3ds_setup_requires_action_then_saves_once_authenticated(login_as, customer, sdk,
                                                                 emulator):
    session = login_as(customer)
    secret = session.post(f"{BASE}/setup-intent").get_json()["client_secret"]
    intent = sdk.v1.setup_intents.confirm(seti_id(secret),
                                          {"payment_method": new_card(sdk, THREE_DS).id})
    assert intent.status == "requires_action"
    pending = session.post(f"{BASE}/save", json={"setup_intent_id": intent.id})
    assert pending.status_code == 400
    assert pending.get_json()["error"]["param"] == "setup_intent_id"
    assert "confirm" in pending.get_json()["error"]["message"]
    assert rows() == []
    authenticate_setup(emulator, intent.id, secret, success=True)
    saved = session.post(f"{BASE}/save", json={"setup_intent_id": intent.id})
    assert saved.status_code == 201
    assert saved.get_json()["payment_method"]["last4"] == "3155"


def test_3ds_setup_failed_authentication_is_402(login_as, customer, sdk, emulator):
    session = login_as(customer)
    secret = session.post(f"{BASE}/setup-intent").get_json()["client_secret"]
    sdk.v1.setup_intents.confirm(seti_id(secret), {"payment_method": new_card(sdk, THREE_DS).id})
    authenticate_setup(emulator, seti_id(secret), secret, success=False)
    response = session.post(f"{BASE}/save", json={"setup_intent_id": seti_id(secret)})
    assert response.status_code == 402
    assert response.get_json()["error"]["decline_code"] == "setup_intent_authentication_failure"
    assert rows() == []


def test_unfinished_setup_intent_is_400(login_as, customer):
    session = login_as(customer)
    secret = session.post(f"{BASE}/setup-intent").get_json()["client_secret"]
    response = session.post(f"{BASE}/save", json={"setup_intent_id": seti_id(secret)})
    assert response.status_code == 400
    assert rows() == []


# --- list, default, delete --------------------------------------------------------------------

def test_list_is_default_first_then_newest(login_as, customer, save_card):
    session = login_as(customer)
    a = save_card(session, VISA)
    b = save_card(session, MASTERCARD)
    c = save_card(session, "5200828282828210")
    listed = session.get(f"{BASE}/list")
    assert listed.status_code == 200
    assert [m["id"] for m in listed.get_json()["data"]] == [a["id"], c["id"], b["id"]]
    response = session.post(f"{BASE}/default", json={"payment_method_id": b["id"]})
    assert response.status_code == 200
    assert response.get_json()["payment_method"] == {**b, "is_default": True}
    listed = session.get(f"{BASE}/list").get_json()["data"]
    assert [(m["id"], m["is_default"]) for m in listed] == [
        (b["id"], True), (c["id"], False), (a["id"], False)]


def test_list_is_only_the_callers(login_as, customer, make_user, save_card):
    other = login_as(make_user())
    save_card(other, VISA)
    assert login_as(customer).get(f"{BASE}/list").get_json() == {"data": []}


def test_make_default_updates_the_stripe_customer(login_as, customer, sdk, save_card):
    session = login_as(customer)
    save_card(session, VISA)
    second = save_card(session, MASTERCARD)
    assert session.post(f"{BASE}/default",
                        json={"payment_method_id": second["id"]}).status_code == 200
    assert sdk.v1.customers.retrieve(stripe_customer_id(customer)) \
        .invoice_settings.default_payment_method == second["id"]


def test_delete_detaches_at_stripe_and_forgets_the_card(login_as, customer, sdk, save_card):
    session = login_as(customer)
    keep = save_card(session, VISA)
    gone = save_card(session, MASTERCARD)
    response = session.delete(f"{BASE}/delete", json={"payment_method_id": gone["id"]})
    assert response.status_code == 200
    assert response.get_json() == {"deleted": True, "id": gone["id"]}
    assert [r.stripe_payment_method_id for r in rows(customer)] == [keep["id"]]
    assert sdk.v1.payment_methods.retrieve(gone["id"]).customer is None
    again = session.delete(f"{BASE}/delete", json={"payment_method_id": gone["id"]})
    assert again.status_code == 404


def test_delete_by_query_parameter(login_as, customer, save_card):
    session = login_as(customer)
    card = save_card(session, VISA)
    response = session.delete(f"{BASE}/delete?payment_method_id={card['id']}")
    assert response.status_code == 200 and response.get_json()["id"] == card["id"]
    assert rows() == []


def test_deleting_the_default_makes_the_newest_remaining_card_default(
        login_as, customer, sdk, save_card, product):
    session = login_as(customer)
    oldest = save_card(session, VISA)
    middle = save_card(session, MASTERCARD)
    newest = save_card(session, "5200828282828210")
    # A past payment made with the default card keeps its history after the card goes.
    row = rows(customer)[0]
    payment = Payment(user_id=customer.id, amount=1999, currency="usd", cart_hash="x" * 64,
                      status="succeeded", payment_method_id=row.id, card_brand="visa",
                      card_last4="4242")
    db.session.add(payment)
    db.session.commit()
    payment_id = payment.id
    response = session.delete(f"{BASE}/delete", json={"payment_method_id": oldest["id"]})
    assert response.status_code == 200
    listed = session.get(f"{BASE}/list").get_json()["data"]
    assert [(m["id"], m["is_default"]) for m in listed] == [
        (newest["id"], True), (middle["id"], False)]
    assert sdk.v1.customers.retrieve(stripe_customer_id(customer)) \
        .invoice_settings.default_payment_method == newest["id"]
    db.session.expire_all()
    kept = db.session.get(Payment, payment_id)
    assert kept.payment_method_id is None
    assert (kept.card_brand, kept.card_last4, kept.status) == ("visa", "4242", "succeeded")


def test_deleting_the_last_card_leaves_none(login_as, customer, save_card):
    session = login_as(customer)
    only = save_card(session, VISA)
    assert session.delete(f"{BASE}/delete",
                          json={"payment_method_id": only["id"]}).status_code == 200
    assert session.get(f"{BASE}/list").get_json() == {"data": []}


def test_delete_when_stripe_is_unavailable_keeps_the_card(login_as, customer, sdk, emulator,
                                                          save_card):
    session = login_as(customer)
    card = save_card(session, VISA)
    requests.post(f"{emulator.url}/_config/faults", json={
        "method": "POST", "path_prefix": f"/v1/payment_methods/{card['id']}/detach",
        "status": 503, "times": 10}, timeout=5).raise_for_status()
    response = session.delete(f"{BASE}/delete", json={"payment_method_id": card["id"]})
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "payment_provider_unavailable"
    assert [r.stripe_payment_method_id for r in rows(customer)] == [card["id"]]
    assert sdk.v1.payment_methods.retrieve(card["id"]).customer == stripe_customer_id(customer)


def test_make_default_when_stripe_fails_changes_nothing(login_as, customer, emulator,
                                                        save_card):
    session = login_as(customer)
    first = save_card(session, VISA)
    second = save_card(session, MASTERCARD)
    requests.post(f"{emulator.url}/_config/faults", json={
        "method": "POST", "path_prefix": "/v1/customers/", "status": 500, "times": 10},
        timeout=5).raise_for_status()
    response = session.post(f"{BASE}/default", json={"payment_method_id": second["id"]})
    assert response.status_code in (502, 503)
    assert [r.stripe_payment_method_id for r in rows(customer) if r.is_default] == [first["id"]]


# --- someone else's card, unknown ids ---------------------------------------------------------

def test_another_users_card_is_404_everywhere_and_nothing_changes(
        login_as, customer, make_user, sdk, save_card, confirmed_setup):
    owner = login_as(make_user())
    theirs = save_card(owner, VISA)
    their_other_seti = confirmed_setup(owner, MASTERCARD)  # confirmed, not yet saved
    owner_customer = stripe_customer_id(owner.user)
    session = login_as(customer)
    save_card(session, "5200828282828210")
    before = [(r.id, r.user_id, r.stripe_payment_method_id, r.is_default) for r in rows()]

    attempts = [
        session.post(f"{BASE}/save", json={"payment_method_id": theirs["id"]}),
        session.post(f"{BASE}/save", json={"setup_intent_id": their_other_seti}),
        session.post(f"{BASE}/default", json={"payment_method_id": theirs["id"]}),
        session.delete(f"{BASE}/delete", json={"payment_method_id": theirs["id"]}),
        session.delete(f"{BASE}/delete?payment_method_id={theirs['id']}"),
    ]
    for response in attempts:
        assert response.status_code == 404, response.get_json()
        assert response.get_json()["error"]["code"] == "not_found"
    assert [(r.id, r.user_id, r.stripe_payment_method_id, r.is_default)
            for r in rows()] == before
    assert sdk.v1.payment_methods.retrieve(theirs["id"]).customer == owner_customer
    assert theirs["id"] in attached_ids(sdk, owner_customer)


@pytest.mark.parametrize("body", [
    {"setup_intent_id": "seti_doesnotexist123"},
    {"payment_method_id": "pm_doesnotexist123"},
])
def test_save_unknown_ids_are_404(login_as, customer, body):
    response = login_as(customer).post(f"{BASE}/save", json=body)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert rows() == []


def test_default_and_delete_unknown_ids_are_404(login_as, customer):
    session = login_as(customer)
    assert session.post(f"{BASE}/default",
                        json={"payment_method_id": "pm_unknown123"}).status_code == 404
    assert session.delete(f"{BASE}/delete",
                          json={"payment_method_id": "pm_unknown123"}).status_code == 404


# --- authentication, CSRF, bodies -------------------------------------------------------------

def test_session_json_requires_the_csrf_token(login_as, customer, save_card):
    session = login_as(customer)
    card = save_card(session, VISA)
    raw = session.client
    calls = [
        raw.post(f"{BASE}/setup-intent", json={}),
        raw.post(f"{BASE}/save", json={"payment_method_id": card["id"]}),
        raw.post(f"{BASE}/default", json={"payment_method_id": card["id"]}),
        raw.delete(f"{BASE}/delete", json={"payment_method_id": card["id"]}),
        raw.delete(f"{BASE}/delete", json={"payment_method_id": card["id"]},
                   headers={"X-CSRFToken": "forged"}),
    ]
    for response in calls:
        assert response.status_code == 403
        assert response.get_json()["error"]["code"] == "forbidden"
    assert [r.stripe_payment_method_id for r in rows(customer)] == [card["id"]]
    assert raw.get(f"{BASE}/list").status_code == 200  # reads need no token


def test_bearer_token_works_without_csrf(client, customer, api_token, sdk):
    headers = {"Authorization": f"Bearer {api_token(customer)}"}
    created = client.post(f"{BASE}/setup-intent", headers=headers)
    assert created.status_code == 201
    intent_id = seti_id(created.get_json()["client_secret"])
    sdk.v1.setup_intents.confirm(intent_id, {"payment_method": new_card(sdk, VISA).id})
    saved = client.post(f"{BASE}/save", json={"setup_intent_id": intent_id}, headers=headers)
    assert saved.status_code == 201
    pm_id = saved.get_json()["payment_method"]["id"]
    listed = client.get(f"{BASE}/list", headers=headers)
    assert [m["id"] for m in listed.get_json()["data"]] == [pm_id]
    assert client.post(f"{BASE}/default", json={"payment_method_id": pm_id},
                       headers=headers).status_code == 200
    assert client.delete(f"{BASE}/delete", json={"payment_method_id": pm_id},
                         headers=headers).status_code == 200
    assert rows() == []


def test_forged_bearer_token_is_401(client):
    response = client.get(f"{BASE}/list", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401


@pytest.mark.parametrize("body", [
    {},
    {"setup_intent_id": None},
    {"setup_intent_id": 12345},
    {"setup_intent_id": ["seti_x"]},
    {"setup_intent_id": ""},
    {"setup_intent_id": "pm_wrongkind"},
    {"payment_method_id": "seti_wrongkind"},
    {"payment_method_id": {"id": "pm_x"}},
    {"payment_method_id": "pm_../../v1/customers"},
    {"setup_intent_id": "seti_abc", "payment_method_id": "pm_abc"},
    {"payment_method_id": "pm_abc", "make_default": "yes"},
    {"payment_method_id": "pm_abc", "make_default": 1},
])
def test_save_invalid_bodies_are_400(login_as, customer, body):
    response = login_as(customer).post(f"{BASE}/save", json=body)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["code"] == "invalid_request"
    assert rows() == []


@pytest.mark.parametrize("body", [{}, {"payment_method_id": 7}, {"payment_method_id": None},
                                  {"payment_method_id": "card_123"}])
def test_default_and_delete_invalid_bodies_are_400(login_as, customer, body):
    session = login_as(customer)
    assert session.post(f"{BASE}/default", json=body).status_code == 400
    assert session.delete(f"{BASE}/delete", json=body).status_code == 400


@pytest.mark.parametrize("path", ["save", "default"])
def test_malformed_json_is_400(login_as, customer, path):
    session = login_as(customer)
    response = session.post(f"{BASE}/{path}", data="{not json",
                            headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"
    response = session.post(f"{BASE}/{path}", json=["pm_abc"])
    assert response.status_code == 400



def test_save_after_the_webhook_already_deduplicated_the_card(login_as, customer, sdk,
                                                             confirmed_setup):
    """The attached webhook can win the race: it keeps the saved card and detaches the new
    duplicate; the page's save then answers with the card that is saved."""
    from payments_site.services.methods import sync_payment_method

    session = login_as(customer)
    first = session.post(f"{BASE}/save",
                         json={"setup_intent_id": confirmed_setup(session, VISA)}).get_json()
    intent_id = confirmed_setup(session, VISA)
    duplicate = sdk.v1.setup_intents.retrieve(intent_id).payment_method
    sync_payment_method(duplicate)
    assert sdk.v1.payment_methods.retrieve(duplicate).customer is None
    response = session.post(f"{BASE}/save", json={"setup_intent_id": intent_id})
    assert response.status_code == 201
    assert response.get_json()["payment_method"]["id"] == first["payment_method"]["id"]
    assert [r.stripe_payment_method_id for r in rows(customer)] == [
        first["payment_method"]["id"]]


def test_save_of_a_setup_intent_whose_card_was_removed_is_400(login_as, customer,
                                                               confirmed_setup):
    session = login_as(customer)
    intent_id = confirmed_setup(session, VISA)
    saved = session.post(f"{BASE}/save", json={"setup_intent_id": intent_id}).get_json()
    session.delete(f"{BASE}/delete", json={"payment_method_id": saved["payment_method"]["id"]})
    response = session.post(f"{BASE}/save", json={"setup_intent_id": intent_id})
    assert response.status_code == 400
    assert "removed" in response.get_json()["error"]["message"]
    assert rows() == []
