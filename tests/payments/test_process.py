"""POST /api/payments/process: saved cards, declines, 3-D Secure, new cards, input rules."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from payments_site.extensions import db
from payments_site.models import Payment, PaymentItem
from payments_site.services.catalog import create_product
from tests.helpers import statements_run
from tests.payments.conftest import DECLINES, THREE_DS, VISA


def test_saved_card_payment_succeeds(shopper, customer, mug, make_card, sc, run_jobs):
    pm_id = make_card(customer)
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 2}], "payment_method_id": pm_id})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["requires_action"] is False
    payment = body["payment"]
    assert payment["status"] == "succeeded"
    assert payment["amount"] == 3998 and payment["currency"] == "usd"
    assert payment["id"].startswith("pay_")
    assert payment["payment_method"] == {"brand": "visa", "last4": "4242"}
    assert payment["items"] == [{"product_id": mug.id, "name": "Ceramic mug", "quantity": 2,
                                 "unit_amount": 1999}]
    assert payment["failure"] is None
    intent = sc.v1.payment_intents.retrieve(payment["stripe_payment_intent_id"])
    assert intent.status == "succeeded" and intent.amount == 3998
    assert intent.metadata["payment_id"] == payment["id"]
    row = db.session.scalar(select(Payment).where(Payment.public_id == payment["id"]))
    assert row.succeeded_at is not None and row.stripe_charge_id == intent.latest_charge
    assert row.confirm_attempts == 1


@pytest.mark.parametrize(("number", "decline_code"), sorted(DECLINES.items()))
def test_declined_saved_card_is_402_with_payment(shopper, customer, mug, make_card, sc,
                                                 number, decline_code):
    pm_id = make_card(customer, number, attach=False)
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 1}], "payment_method_id": pm_id})
    assert response.status_code == 402, response.get_json()
    body = response.get_json()
    assert body["error"]["code"] == "card_declined"
    assert body["error"]["decline_code"] == decline_code
    assert body["error"]["message"]
    assert body["payment"]["status"] == "failed"
    assert body["payment"]["failure"]["code"] == decline_code
    intent = sc.v1.payment_intents.retrieve(body["payment"]["stripe_payment_intent_id"])
    assert intent.status == "requires_payment_method"


def test_decline_then_retry_uses_the_same_intent(shopper, customer, mug, make_card):
    declined = make_card(customer, "4000000000009995", attach=False)
    body = {"items": [{"product_id": mug.id, "quantity": 1}], "payment_method_id": declined}
    first = shopper.post("/api/payments/process", json=body)
    assert first.status_code == 402
    second = shopper.post("/api/payments/process", json=body)
    assert second.status_code == 402
    assert second.get_json()["payment"]["id"] == first.get_json()["payment"]["id"]
    assert second.get_json()["payment"]["stripe_payment_intent_id"] == \
        first.get_json()["payment"]["stripe_payment_intent_id"]
    row = db.session.scalar(select(Payment))
    db.session.refresh(row)
    assert row.confirm_attempts == 2


def test_three_d_secure_requires_action(shopper, customer, mug, make_card, sc):
    pm_id = make_card(customer, THREE_DS)
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 1}], "payment_method_id": pm_id})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["requires_action"] is True
    assert body["payment"]["status"] == "requires_action"
    assert body["client_secret"].startswith(body["payment"]["stripe_payment_intent_id"])


def test_new_card_gets_a_client_secret_and_completes(shopper, customer, mug, sc, run_jobs):
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 1}], "save_payment_method": True})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    payment = body["payment"]
    assert payment["status"] == "requires_payment_method"
    assert body["requires_action"] is False and body["client_secret"]
    intent_id = payment["stripe_payment_intent_id"]
    intent = sc.v1.payment_intents.retrieve(intent_id)
    assert intent.setup_future_usage == "off_session"
    # What Stripe.js does in the browser: confirm with the card the customer typed.
    pm = sc.v1.payment_methods.create({"type": "card", "card": {
        "number": VISA, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    sc.v1.payment_intents.confirm(intent_id, {"payment_method": pm.id})
    page = shopper.get(f"/checkout/complete?payment={payment['id']}&payment_intent={intent_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Your payment was successful" in html and "$19.99" in html
    row = db.session.scalar(select(Payment).where(Payment.public_id == payment["id"]))
    db.session.refresh(row)
    assert row.status == "succeeded" and row.card_last4 == "4242"
    # "Save this card" was ticked: the card is now one of the customer's saved cards.
    assert row.payment_method is not None and row.payment_method.last4 == "4242"
    assert row.payment_method.is_default is True


def test_save_choice_can_change_before_paying(shopper, mug, sc):
    items = [{"product_id": mug.id, "quantity": 1}]
    first = shopper.post("/api/payments/process", json={"items": items}).get_json()
    second = shopper.post("/api/payments/process", json={
        "items": items, "save_payment_method": True}).get_json()
    assert second["payment"]["id"] == first["payment"]["id"]
    intent = sc.v1.payment_intents.retrieve(first["payment"]["stripe_payment_intent_id"])
    assert intent.setup_future_usage == "off_session"


def test_client_amount_currency_and_status_are_ignored(shopper, customer, mug, make_card, sc):
    pm_id = make_card(customer)
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 1, "unit_amount": 1}],
        "payment_method_id": pm_id, "amount": 1, "currency": "jpy", "status": "succeeded"})
    assert response.status_code == 201
    payment = response.get_json()["payment"]
    assert (payment["amount"], payment["currency"]) == (1999, "usd")
    intent = sc.v1.payment_intents.retrieve(payment["stripe_payment_intent_id"])
    assert (intent.amount, intent.currency) == (1999, "usd")


@pytest.mark.parametrize("quantity", [0, -1, 1.5, "1e3", "2", 10**9, True, None, 100])
def test_invalid_quantities_are_400(shopper, mug, quantity):
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": quantity}]})
    assert response.status_code == 400
    assert response.get_json()["error"] == {
        "code": "invalid_request", "param": "items[0].quantity",
        "message": response.get_json()["error"]["message"]}
    assert db.session.scalar(select(func.count(Payment.id))) == 0


@pytest.mark.parametrize("body", [
    {}, {"items": []}, {"items": "mug"}, {"items": [1]},
    {"items": [{"product_id": "1", "quantity": 1}]},
    {"items": [{"product_id": 1, "quantity": 1}], "save_payment_method": "yes"},
])
def test_malformed_bodies_are_400(shopper, mug, body):
    response = shopper.post("/api/payments/process", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"


def test_unknown_and_inactive_products_are_400(shopper, mug):
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 1}, {"product_id": 9999, "quantity": 1}]})
    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == "items[1].product_id"
    mug.active = False
    db.session.commit()
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 1}]})
    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == "items[0].product_id"


def test_mixed_currencies_are_400(shopper, mug):
    euro = create_product("Tea towel", 900, "eur")
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 1}, {"product_id": euro.id, "quantity": 1}]})
    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == "items"


def test_amount_below_stripe_minimum_and_above_maximum_are_400(shopper):
    cheap = create_product("Sticker", 10, "usd")
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": cheap.id, "quantity": 4}]})
    assert response.status_code == 400 and response.get_json()["error"]["param"] == "items"
    dear = create_product("Yacht", 99_000_000, "usd")
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": dear.id, "quantity": 2}]})
    assert response.status_code == 400 and response.get_json()["error"]["param"] == "items"


def test_zero_decimal_currency_amount_is_sent_as_is(shopper, customer, make_card, sc):
    tea = create_product("Matcha", 1500, "jpy")
    pm_id = make_card(customer)
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": tea.id, "quantity": 1}], "payment_method_id": pm_id})
    assert response.status_code == 201, response.get_json()
    payment = response.get_json()["payment"]
    assert (payment["amount"], payment["currency"]) == (1500, "jpy")
    intent = sc.v1.payment_intents.retrieve(payment["stripe_payment_intent_id"])
    assert (intent.amount, intent.currency) == (1500, "jpy")
    page = shopper.get(f"/account/payments/{payment['id']}").get_data(as_text=True)
    assert "¥1,500" in page


def test_another_users_saved_card_is_404(shopper, make_user, mug, make_card):
    other = make_user("other@example.com")
    pm_id = make_card(other)
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 1}], "payment_method_id": pm_id})
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_login_and_csrf_are_required(client, shopper, mug):
    body = {"items": [{"product_id": mug.id, "quantity": 1}]}
    assert client.post("/api/payments/process", json=body).status_code in (401, 403)
    response = shopper.client.post("/api/payments/process", json=body)  # no X-CSRFToken
    assert response.status_code == 403
    assert db.session.scalar(select(func.count(PaymentItem.id))) == 0


def test_bearer_token_clients_need_no_csrf(client, customer, mug, api_token):
    token = api_token(customer)
    response = client.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 1}]},
        headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201


def test_payment_rate_limit(app, shopper, mug):
    app.config["PAYMENT_LIMIT"] = "3 per minute"
    body = {"items": [{"product_id": mug.id, "quantity": 1}]}
    statuses = [shopper.post("/api/payments/process", json=body).status_code for _ in range(5)]
    assert statuses[:3] == [201, 201, 201] and statuses[3:] == [429, 429]


def _after_create(monkeypatch, write):
    """Run `write(connection, intent_id)` on its own connection right after Stripe created
    the intent and before this request records it: another request (or reconcile) got
    there first."""
    from payments_site import stripe_gateway

    create = stripe_gateway.create_payment_intent

    def create_then_write(*args, **kwargs):
        intent = create(*args, **kwargs)
        with db.engine.begin() as connection:
            write(connection, intent.id)
        return intent

    monkeypatch.setattr(stripe_gateway, "create_payment_intent", create_then_write)


@pytest.mark.parametrize(("written_first", "status", "stripe_status"), [
    # A double submit recorded the intent and took the confirm: this request calls Stripe
    # no second time, and the row counts one attempt, not two.
    ({"status": "processing", "confirm_attempts": 1}, "processing",
     "requires_payment_method"),
    # Reconcile recorded it (same key, same intent) but nobody confirmed: the combined
    # write misses, and the confirm is claimed and made on its own.
    ({}, "succeeded", "succeeded"),
], ids=["confirm-taken", "only-recorded"])
def test_intent_recorded_elsewhere_first_is_confirmed_at_most_once(
        shopper, customer, mug, make_card, sc, monkeypatch, written_first, status,
        stripe_status):
    """The write that records the intent also claims the confirm, guarded on both."""
    from sqlalchemy import update

    pm_id = make_card(customer)
    _after_create(monkeypatch, lambda connection, intent_id: connection.execute(
        update(Payment).values(stripe_payment_intent_id=intent_id, needs_reconcile=False,
                               **written_first)))
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 1}], "payment_method_id": pm_id})
    assert response.status_code == 201, response.get_json()
    payment = response.get_json()["payment"]
    assert payment["status"] == status
    assert sc.v1.payment_intents.retrieve(payment["stripe_payment_intent_id"]).status == \
        stripe_status
    row = db.session.scalar(select(Payment))
    db.session.refresh(row)
    assert (row.status, row.confirm_attempts) == (status, 1)


def test_an_unexpected_intent_recorded_first_is_an_error_and_not_confirmed(
        shopper, customer, mug, make_card, sc, monkeypatch):
    """A row that names some other intent is never confirmed against either: 502."""
    from sqlalchemy import update

    pm_id = make_card(customer)
    _after_create(monkeypatch, lambda connection, intent_id: connection.execute(
        update(Payment).values(stripe_payment_intent_id="pi_someone_else")))
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 1}], "payment_method_id": pm_id})
    assert response.status_code == 502, response.get_json()
    assert response.get_json()["error"]["code"] == "payment_provider_error"
    created = [i for i in sc.v1.payment_intents.list({"limit": 10}).data
               if i.customer == customer.stripe_customer_id]
    assert [i.status for i in created] == ["requires_payment_method"]


def test_saved_card_checkout_round_trips_stay_few(app, client, customer, mug, make_card,
                                                  api_token):
    """A regression guard on the write-ahead path's cost (bench row 1 measures the time):
    each Stripe call is still preceded by a committed write, but the answer is built from
    what was written, without reading the payment back."""
    from sqlalchemy import event

    pm_id = make_card(customer)
    token = api_token(customer)
    product_id = mug.id  # read before counting: the test's own session is not the request's
    commits: list[int] = []

    def on_commit(_connection):
        commits.append(1)

    event.listen(db.engine, "commit", on_commit)
    try:
        with statements_run(db.engine, lambda _connection, sql: " ".join(
                sql.split()[0:3:2])) as statements:
            response = client.post("/api/payments/process", headers={
                "Authorization": f"Bearer {token}", "Idempotency-Key": "round-trips-1"},
                json={"items": [{"product_id": product_id, "quantity": 1}],
                      "payment_method_id": pm_id})
    finally:
        event.remove(db.engine, "commit", on_commit)
    assert response.status_code == 201, response.get_json()
    # user, idempotency claim; products, card, user lock, open payment?, payment, items;
    # intent id with the confirm claim (one write), result; stored answer. Nothing reads
    # the payment back.
    assert len(statements) <= 11, statements
    assert not any(s.startswith("SELECT payments") for s in statements[6:]), statements
    # The single-statement writes autocommit; SQLite also ends its read before the lock.
    assert len(commits) <= (2 if db.engine.dialect.name == "postgresql" else 3), statements
    # The answer built from the written values is what the database holds.
    body = response.get_json()["payment"]
    db.session.expire_all()
    row = db.session.scalar(select(Payment).where(Payment.public_id == body["id"]))
    assert (row.status, row.card_last4, row.stripe_payment_intent_id, row.confirm_attempts,
            row.needs_reconcile) == ("succeeded", body["payment_method"]["last4"],
                                     body["stripe_payment_intent_id"], 1, False)
    assert row.failure_code is None and body["failure"] is None
