"""One checkout attempt = one PaymentIntent: Idempotency-Keys, double submits, concurrency."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select, update

from payments_site.errors import IdempotencyKeyReused
from payments_site.extensions import db
from payments_site.models import IdempotencyKey, Payment, Product, utcnow
from payments_site.services import sweeper
from payments_site.services.idempotency import ABANDONED_AFTER, run_idempotent
from tests.payments.conftest import intents_of


def _concurrently(app, token, body, headers, n=20):
    barrier = threading.Barrier(n)

    def call(_):
        client = app.test_client()
        barrier.wait()
        response = client.post("/api/payments/process", json=body,
                               headers={"Authorization": f"Bearer {token}", **headers})
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(call, range(n)))


def test_same_key_same_body_replays_the_stored_response(shopper, customer, mug, make_card, sc):
    pm_id = make_card(customer)
    body = {"items": [{"product_id": mug.id, "quantity": 1}], "payment_method_id": pm_id}
    first = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k1"})
    again = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json()
    assert len(intents_of(sc, customer)) == 1


def test_the_stored_row_replays_the_answer_and_refuses_another_body(shopper, customer, mug,
                                                                   make_card, sc):
    """The key's row keeps the answer: the same body gets it back from there, and another
    body is refused."""
    pm_id = make_card(customer)
    body = {"items": [{"product_id": mug.id, "quantity": 1}], "payment_method_id": pm_id}
    first = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k-db"})
    assert first.status_code == 201
    row = db.session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == "k-db"))
    assert (row.status, row.response_status) == ("done", 201)
    assert json.loads(row.response_body) == first.get_json()

    other = shopper.post("/api/payments/process", json={**body, "items": [
        {"product_id": mug.id, "quantity": 2}]}, headers={"Idempotency-Key": "k-db"})
    assert other.status_code == 422
    assert other.get_json()["error"]["code"] == "idempotency_key_reused"
    assert other.get_json()["error"]["param"] == "Idempotency-Key"
    again = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k-db"})
    assert again.status_code == 201
    assert again.get_json() == first.get_json()
    assert len(intents_of(sc, customer)) == 1
    assert len(sc.v1.charges.list({"customer": customer.stripe_customer_id}).data) == 1


def test_a_replayed_decline_is_the_same_402(shopper, customer, mug, make_card, sc):
    pm_id = make_card(customer, "4000000000000002", attach=False)
    body = {"items": [{"product_id": mug.id, "quantity": 1}], "payment_method_id": pm_id}
    first = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "d"})
    again = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "d"})
    assert first.status_code == again.status_code == 402
    assert first.get_json() == again.get_json()
    db.session.expire_all()
    # The replay did not confirm again.
    assert db.session.scalar(select(Payment.confirm_attempts)) == 1


def test_same_key_other_body_is_422(shopper, mug):
    headers = {"Idempotency-Key": "k2"}
    assert shopper.post("/api/payments/process", headers=headers, json={
        "items": [{"product_id": mug.id, "quantity": 1}]}).status_code == 201
    response = shopper.post("/api/payments/process", headers=headers, json={
        "items": [{"product_id": mug.id, "quantity": 2}]})
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "idempotency_key_reused"
    assert response.get_json()["error"]["param"] == "Idempotency-Key"
    assert db.session.scalar(select(func.count(Payment.id))) == 1


@pytest.mark.parametrize("key", ["", "k" * 256, "tab\there", "del\x7f"])
def test_a_malformed_key_is_refused_before_anything_is_kept(shopper, mug, key):
    """API.md: a key is 1 to 255 printable characters; any other is a 400 naming the header,
    and neither a claim nor a payment is kept for it."""
    response = shopper.post("/api/payments/process", headers={"Idempotency-Key": key},
                            json={"items": [{"product_id": mug.id, "quantity": 1}]})
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["param"] == "Idempotency-Key"
    assert error["message"] == "Idempotency-Key must be 1 to 255 printable characters."
    assert db.session.scalar(select(func.count(Payment.id))) == 0
    assert db.session.scalar(select(func.count(IdempotencyKey.id))) == 0


def test_same_key_while_the_first_is_running_is_409(app, customer, mug, api_token, fault):
    token = api_token(customer)
    fault(status=None, delay_s=1.5, times=1)  # Stripe is slow on the first create
    body = {"items": [{"product_id": mug.id, "quantity": 1}]}
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "slow"}
    results = {}

    def first():
        results["first"] = app.test_client().post("/api/payments/process", json=body,
                                                  headers=headers).status_code

    thread = threading.Thread(target=first)
    thread.start()
    time.sleep(0.6)
    second = app.test_client().post("/api/payments/process", json=body, headers=headers)
    thread.join()
    assert results["first"] == 201
    assert second.status_code == 409
    assert second.get_json()["error"]["code"] == "idempotency_in_progress"


def test_double_submit_without_key_reuses_the_payment(shopper, customer, mug, sc):
    body = {"items": [{"product_id": mug.id, "quantity": 1}]}
    first = shopper.post("/api/payments/process", json=body).get_json()
    second = shopper.post("/api/payments/process", json=body).get_json()
    assert first["payment"]["id"] == second["payment"]["id"]
    assert first["client_secret"] == second["client_secret"]
    assert len(intents_of(sc, customer)) == 1
    # A different cart is a different attempt.
    other = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 3}]}).get_json()
    assert other["payment"]["id"] != first["payment"]["id"]
    assert len(intents_of(sc, customer)) == 2


def test_a_just_succeeded_cart_is_not_charged_again(shopper, customer, mug, make_card, sc):
    pm_id = make_card(customer)
    body = {"items": [{"product_id": mug.id, "quantity": 1}], "payment_method_id": pm_id}
    first = shopper.post("/api/payments/process", json=body).get_json()
    second = shopper.post("/api/payments/process", json=body)
    assert second.status_code == 201
    assert second.get_json()["payment"]["id"] == first["payment"]["id"]
    assert second.get_json()["payment"]["status"] == "succeeded"
    assert len(intents_of(sc, customer)) == 1
    charges = sc.v1.charges.list({"customer": customer.stripe_customer_id}).data
    assert len([c for c in charges if c.status == "succeeded"]) == 1


@pytest.mark.parametrize("with_key", [True, False])
def test_twenty_concurrent_submits_make_one_intent(app, customer, mug, make_card, sc,
                                                   api_token, with_key):
    pm_id = make_card(customer)
    token = api_token(customer)
    body = {"items": [{"product_id": mug.id, "quantity": 1}], "payment_method_id": pm_id}
    headers = {"Idempotency-Key": "attempt-1"} if with_key else {}
    results = _concurrently(app, token, body, headers)
    statuses = sorted(status for status, _ in results)
    assert set(statuses) <= {201, 409}, statuses
    assert 201 in statuses
    ids = {b["payment"]["id"] for s, b in results if s == 201}
    assert len(ids) == 1
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Payment.id))) == 1
    intents = intents_of(sc, customer)
    assert len(intents) == 1 and intents[0].status == "succeeded"
    charges = sc.v1.charges.list({"customer": customer.stripe_customer_id}).data
    assert len(charges) == 1


def test_twenty_concurrent_new_card_submits_make_one_intent(app, customer, mug, sc,
                                                            api_token):
    token = api_token(customer)
    body = {"items": [{"product_id": mug.id, "quantity": 2}]}
    results = _concurrently(app, token, body, {})
    assert all(status == 201 for status, _ in results), results
    assert len({b["client_secret"] for _, b in results}) == 1
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Payment.id))) == 1
    assert len(intents_of(sc, customer)) == 1


def test_an_expired_key_is_a_new_request(shopper, customer, mug, make_card, sc):
    """After IDEMPOTENCY_TTL the key is free again: the same key with another body is a new
    checkout (its old row is replaced), not a 422 and not a 409."""
    pm_id = make_card(customer)
    body = {"items": [{"product_id": mug.id, "quantity": 1}], "payment_method_id": pm_id}
    first = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k-old"})
    assert first.status_code == 201
    db.session.execute(update(IdempotencyKey).where(IdempotencyKey.key == "k-old").values(
        expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()

    later = shopper.post("/api/payments/process", json={**body, "items": [
        {"product_id": mug.id, "quantity": 2}]}, headers={"Idempotency-Key": "k-old"})
    assert later.status_code == 201, later.get_json()
    assert later.get_json()["payment"]["id"] != first.get_json()["payment"]["id"]
    assert len(intents_of(sc, customer)) == 2
    rows = db.session.scalars(select(IdempotencyKey).where(IdempotencyKey.key == "k-old")).all()
    assert len(rows) == 1 and rows[0].expires_at > utcnow()


def test_a_claim_abandoned_mid_request_is_taken_over(shopper, customer, mug, make_card, sc):
    """A claim left `in_progress` for longer than ABANDONED_AFTER (its process died) is taken
    over by the next request with that key and body; a younger one answers 409."""
    pm_id = make_card(customer)
    body = {"items": [{"product_id": mug.id, "quantity": 1}], "payment_method_id": pm_id}
    first = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k-ab"})
    assert first.status_code == 201

    def claim_left_running(age: timedelta) -> None:
        db.session.execute(update(IdempotencyKey).where(IdempotencyKey.key == "k-ab").values(
            status="in_progress", response_body=None, response_status=None,
            created_at=utcnow() - age))
        db.session.commit()

    claim_left_running(ABANDONED_AFTER - timedelta(seconds=30))
    young = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k-ab"})
    assert young.status_code == 409
    assert young.get_json()["error"]["code"] == "idempotency_in_progress"

    claim_left_running(ABANDONED_AFTER + timedelta(seconds=30))
    taken = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k-ab"})
    assert taken.status_code != 409, taken.get_json()
    db.session.expire_all()
    row = db.session.scalars(select(IdempotencyKey).where(IdempotencyKey.key == "k-ab")).one()
    assert row.status == "done" and row.response_status == taken.status_code
    assert len(intents_of(sc, customer)) == 1  # the same cart is never charged twice


@pytest.mark.parametrize("later", [timedelta(minutes=3), timedelta(hours=2)])
def test_a_key_run_again_after_its_answer_was_lost_never_charges_again(
        shopper, customer, mug, make_card, sc, later):
    """Stripe charged the card, then the process died before the answer was stored (the
    claim stays `in_progress`). When the client retries with the same key, its claim has
    been abandoned for minutes or hours: the run that takes it over finds the same payment
    through the key, not a second charge, however long ago the first one succeeded."""
    pm_id = make_card(customer)
    body = {"items": [{"product_id": mug.id, "quantity": 1}], "payment_method_id": pm_id}
    first = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k-lost"})
    assert first.status_code == 201 and first.get_json()["payment"]["status"] == "succeeded"
    # The answer never reached the key's row, and `later` has passed since.
    db.session.execute(update(IdempotencyKey).where(IdempotencyKey.key == "k-lost").values(
        status="in_progress", response_body=None, response_status=None,
        created_at=utcnow() - later))
    payment = db.session.scalars(select(Payment)).one()
    payment.created_at -= later
    payment.succeeded_at -= later
    db.session.commit()

    again = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k-lost"})
    assert again.status_code == 201, again.get_json()
    assert again.get_json()["payment"]["id"] == first.get_json()["payment"]["id"]
    assert again.get_json()["payment"]["status"] == "succeeded"
    assert db.session.scalar(select(func.count(Payment.id))) == 1
    assert len(intents_of(sc, customer)) == 1
    charges = sc.v1.charges.list({"customer": customer.stripe_customer_id}).data
    assert len(charges) == 1


def _lose_the_answer(key: str) -> None:
    """As if the request under `key` died before storing its answer, minutes ago."""
    db.session.execute(update(IdempotencyKey).where(IdempotencyKey.key == key).values(
        status="in_progress", response_body=None, response_status=None,
        created_at=utcnow() - ABANDONED_AFTER - timedelta(minutes=1)))
    db.session.commit()


def test_a_key_run_again_on_a_changed_or_expired_payment_is_told_in_api_words(
        shopper, customer, mug, sc):
    """The key's unpaid payment is never charged at another total than the one first
    answered, nor revived once expired; the refusal names the key (not a page to reload)
    and is itself kept under the key."""
    body = {"items": [{"product_id": mug.id, "quantity": 1}]}
    first = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k-x"})
    assert first.status_code == 201
    _lose_the_answer("k-x")
    db.session.get(Product, mug.id).unit_amount = 2499
    db.session.commit()
    changed = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k-x"})
    assert changed.status_code == 400
    assert changed.get_json()["error"] == {
        "code": "invalid_request", "param": "items",
        "message": "The prices of these items have changed since this Idempotency-Key was "
                   "first used. Send a new key to pay the new total."}
    again = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k-x"})
    assert (again.status_code, again.get_json()) == (400, changed.get_json())

    db.session.get(Product, mug.id).unit_amount = 1999
    db.session.execute(update(Payment).values(status="canceled"))
    db.session.commit()
    _lose_the_answer("k-x")
    expired = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k-x"})
    assert expired.status_code == 400
    assert expired.get_json()["error"]["param"] == "Idempotency-Key"
    assert expired.get_json()["error"]["message"] == (
        "The payment made with this Idempotency-Key has expired. Send a new key to pay.")
    assert db.session.scalar(select(func.count(Payment.id))) == 1
    assert len(intents_of(sc, customer)) == 1
    fresh = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k-y"})
    assert fresh.status_code == 201
    assert fresh.get_json()["payment"]["id"] != first.get_json()["payment"]["id"]


def test_a_new_key_is_a_new_purchase_of_the_same_cart(shopper, customer, mug, make_card, sc):
    """API.md: a key names one purchase. Buying the same cart again on purpose, at once,
    with a new key is a second payment (without a key it would be taken for a double
    submit); the first key still replays the first."""
    pm_id = make_card(customer)
    body = {"items": [{"product_id": mug.id, "quantity": 1}], "payment_method_id": pm_id}
    first = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k-1"})
    second = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k-2"})
    assert first.status_code == second.status_code == 201
    assert second.get_json()["payment"]["id"] != first.get_json()["payment"]["id"]
    assert second.get_json()["payment"]["status"] == "succeeded"
    assert len(sc.v1.charges.list({"customer": customer.stripe_customer_id}).data) == 2
    replay = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k-1"})
    assert replay.get_json() == first.get_json()


def test_a_page_attempt_names_the_payment_whatever_the_key(shopper, customer, mug, sc):
    """With both, the checkout page's attempt token decides: two keys under one attempt are
    the same payment and PaymentIntent (a page that also sends keys cannot pay twice)."""
    body = {"items": [{"product_id": mug.id, "quantity": 1}],
            "checkout_attempt": "page-attempt-0123456789"}
    first = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k-a"})
    second = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k-b"})
    assert first.status_code == second.status_code == 201
    assert second.get_json()["payment"]["id"] == first.get_json()["payment"]["id"]
    assert second.get_json()["client_secret"] == first.get_json()["client_secret"]
    assert len(intents_of(sc, customer)) == 1


def test_a_key_belongs_to_its_user(shopper, customer, mug, make_card, make_user, login_as,
                                   sc):
    """Two customers who happen to send the same Idempotency-Key never see each other's
    answer, nor a 422 for each other's body: a key is scoped to its user."""
    other = make_user("other-shopper@example.com")
    body = {"items": [{"product_id": mug.id, "quantity": 1}],
            "payment_method_id": make_card(customer)}
    mine = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k-same"})
    assert mine.status_code == 201

    other_session = login_as(other)
    other_body = {"items": [{"product_id": mug.id, "quantity": 3}],
                  "payment_method_id": make_card(other)}
    theirs = other_session.post("/api/payments/process", json=other_body,
                                headers={"Idempotency-Key": "k-same"})
    assert theirs.status_code == 201, theirs.get_json()
    assert theirs.get_json()["payment"]["id"] != mine.get_json()["payment"]["id"]
    assert theirs.get_json()["payment"]["amount"] == 3 * mine.get_json()["payment"]["amount"]
    # Each one's retry replays their own answer.
    again = other_session.post("/api/payments/process", json=other_body,
                               headers={"Idempotency-Key": "k-same"})
    assert (again.status_code, again.get_json()) == (201, theirs.get_json())


def test_an_answer_from_a_stripe_outage_is_not_kept_under_the_key(app, shopper, customer, mug,
                                                                    emulator, fault, sc):
    """A 5xx answer is not stored against the Idempotency-Key: once Stripe answers again,
    the same key and body complete the checkout (one PaymentIntent) instead of replaying
    the outage."""
    body = {"items": [{"product_id": mug.id, "quantity": 1}]}
    fault(status=0, times=int(app.config["STRIPE_MAX_RETRIES"]) + 1)  # connections dropped
    down = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k-down"})
    assert down.status_code >= 500, down.get_json()
    requests.delete(f"{emulator.url}/_config/faults", timeout=5).raise_for_status()

    up = shopper.post("/api/payments/process", json=body, headers={"Idempotency-Key": "k-down"})
    assert up.status_code == 201, up.get_json()
    assert len(intents_of(sc, customer)) == 1


# --- run_idempotent's own contract, with handlers standing for any route ----------------------

def _answer(body: dict, status: int):
    calls: list[int] = []

    def handler():
        calls.append(status)
        return body, status

    return handler, calls


def _runs_then_replays(scope: str, user_id: int, key: str, payload: dict, body: dict,
                       status: int) -> None:
    """The request runs once and answers (body, status); the same key and body then get
    that answer back from the database without running again."""
    handler, calls = _answer(body, status)
    assert run_idempotent(scope, user_id, key, payload, handler) == (body, status)
    assert calls == [status]
    again, calls = _answer({"answer": "another"}, status)
    assert run_idempotent(scope, user_id, key, payload, again) == (body, status)
    assert calls == []


def test_a_request_that_crashes_gives_its_key_back(app, customer):
    """A handler that raises (a bug, a lost database) stores nothing under the key: the
    client's retry with the same key and body runs the request, and the keys of other
    requests are untouched."""
    payload = {"items": [{"product_id": 1, "quantity": 1}]}
    kept, _ = _answer({"payment": "kept"}, 201)
    assert run_idempotent("payments.process", customer.id, "k-kept", payload, kept) == (
        {"payment": "kept"}, 201)

    def crash():
        raise RuntimeError("the handler fell over")

    with pytest.raises(RuntimeError):
        run_idempotent("payments.process", customer.id, "k-crash", payload, crash)
    db.session.expire_all()
    assert db.session.scalars(select(IdempotencyKey.key)).all() == ["k-kept"]

    _runs_then_replays("payments.process", customer.id, "k-crash", payload,
                       {"payment": "made"}, 201)
    again, calls = _answer({"payment": "twice"}, 201)
    assert run_idempotent("payments.process", customer.id, "k-kept", payload, again) == (
        {"payment": "kept"}, 201)
    assert calls == []


@pytest.mark.parametrize("status", [500, 503, 409, 429])
def test_answers_the_client_may_retry_are_not_kept(app, customer, status):
    """A 5xx (500 included), a 409 or a 429 is answered once and not stored: the same key
    and body run the request again, and that answer is the one kept."""
    payload = {"amount": 500, "reason": "duplicate"}
    first, _ = _answer({"error": {"code": "try_again"}}, status)
    assert run_idempotent("refund", customer.id, "k-retry", payload, first)[1] == status
    _runs_then_replays("refund", customer.id, "k-retry", payload, {"refund": "re_1"}, 202)


def test_a_key_sent_to_another_route_is_refused_not_replayed(app, customer):
    """The same key and the same body sent to two routes: the second route answers 422, it
    never replays the first route's answer as its own."""
    payload = {"amount": 500}
    made, _ = _answer({"payment": "pay_1"}, 201)
    run_idempotent("payments.process", customer.id, "k-shared", payload, made)
    refund, calls = _answer({"refund": "re_1"}, 202)
    with pytest.raises(IdempotencyKeyReused):
        run_idempotent("refund", customer.id, "k-shared", payload, refund)
    with pytest.raises(IdempotencyKeyReused):
        run_idempotent("refund", customer.id, "k-shared", payload, refund)
    assert calls == []


def test_the_sweeper_purges_only_expired_keys(app, customer):
    payload = {"amount": 500}
    for key in ("k-old", "k-new"):
        run_idempotent("refund", customer.id, key, payload, _answer({"key": key}, 202)[0])
    db.session.execute(update(IdempotencyKey).where(IdempotencyKey.key == "k-old").values(
        expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()

    assert sweeper.purge_idempotency_keys() == 1
    db.session.expire_all()
    assert db.session.scalars(select(IdempotencyKey.key)).all() == ["k-new"]
    assert run_idempotent("refund", customer.id, "k-new", payload,
                          _answer({"key": "again"}, 202)[0]) == ({"key": "k-new"}, 202)
