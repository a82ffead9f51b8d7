"""RELIABILITY 23: no card number, CVC, secret key, webhook secret or issued token ever lands in
the logs, the database or an error body.

One full flow runs with every logger at DEBUG: register, save a card, pay with a new card the
way Stripe.js does (publishable key + client secret + card data), pay with the saved card, a
decline, real webhooks from the emulator, the receipt email, a refund and its credit note, and
requests that carry card data where none belongs. Then everything is scanned.
"""

from __future__ import annotations

import io
import logging
import re
import time

import requests
from pypdf import PdfReader
from sqlalchemy import LargeBinary, String, Text, select

from tests.conftest import (
    DEFAULT_PASSWORD,
    STRIPE_TEST_PUBLISHABLE_KEY,
    STRIPE_TEST_SECRET_KEY,
    WEBHOOK_SECRET,
    csrf_token_from,
)
from tests.helpers import card_numbers, follow_emailed_link
from tests.security.flows import bearer, buy_and_refund
from tests.security.flows import sdk as stripe_client

VISA = "4242424242424242"
MASTERCARD = "5555555555554444"
DECLINED = "4000000000000002"
CHARGE_FAILS = "4000000000000341"  # attaches fine, declined when charged
CVC = "737"

_SECRET = re.compile(r"\b(?:sk|rk)_(?:test|live)_[A-Za-z0-9]{4,}|\bwhsec_[A-Za-z0-9]{4,}")
_CVC = re.compile(r"(?i)cvc\W{0,6}\d{3,4}(?!\d)")



def findings(text: str, tokens: list[str]) -> list[str]:
    """Every secret-looking thing in `text` (empty when clean)."""
    problems = [f"card number {n[:6]}…" for n in card_numbers(text)]
    problems += [f"cvc: {m.group(0)!r}" for m in _CVC.finditer(text)]
    problems += [f"secret {m.group(0)[:8]}…" for m in _SECRET.finditer(text)]
    problems += [f"secret {s[:8]}…" for s in (STRIPE_TEST_SECRET_KEY, WEBHOOK_SECRET)
                 if s in text]
    problems += [f"bearer token {t[:12]}…" for t in tokens if t in text]
    return problems


def test_the_scanner_finds_what_it_must():
    """The scanner itself can fail: it spots each kind of secret, and not random ids."""
    assert card_numbers("pan 4242 4242 4242 4242 end") == [VISA]
    assert card_numbers("5555-5555-5555-4444") == [MASTERCARD]
    assert card_numbers("4242424242424241") == []  # not Luhn-valid
    assert card_numbers("sha 0a4242424242424242ff") == []  # inside a hex digest
    assert findings('{"cvc": "123"}', []) and findings("card[cvc]=737", [])
    assert findings(STRIPE_TEST_SECRET_KEY, []) and findings(WEBHOOK_SECRET, [])
    assert findings("Authorization: Bearer abc.def.ghi", ["abc.def.ghi"])
    assert findings("pi_123 succeeded for 1999 usd", []) == []


def test_log_records_are_redacted_before_any_handler_sees_them(app, caplog):
    """The redaction runs when a record is made, so pytest's (or any later) handler is covered."""
    caplog.set_level(logging.DEBUG)
    logging.getLogger("payments_site.anything").info(
        "card %s cvc=%s key %s secret %s", VISA, CVC, STRIPE_TEST_SECRET_KEY, WEBHOOK_SECRET)
    try:
        raise ValueError(f"boom {MASTERCARD} {STRIPE_TEST_SECRET_KEY}")
    except ValueError:
        logging.getLogger("payments_site.anything").exception("failed with %s", MASTERCARD)
    text = caplog.text
    assert "[card]" in text and "failed with" in text and "ValueError" in text
    assert findings(text, []) == []


def _all_text_in_database() -> list[tuple[str, str]]:
    """(table.column, value) for every text and bytes value in every table; PDFs as text."""
    from payments_site.extensions import db

    values: list[tuple[str, str]] = []
    for table in db.metadata.sorted_tables:
        columns = [c for c in table.columns if isinstance(c.type, (String, Text, LargeBinary))]
        if not columns:
            continue
        for row in db.session.execute(select(*columns)).all():
            for column, value in zip(columns, row, strict=True):
                if value is None:
                    continue
                if isinstance(value, (bytes, memoryview)):
                    raw = bytes(value)
                    if raw.startswith(b"%PDF"):
                        reader = PdfReader(io.BytesIO(raw))
                        value = "\n".join(page.extract_text() or "" for page in reader.pages)
                        assert value.strip(), "the receipt PDF has no extractable text"
                    else:
                        value = raw.decode("utf-8", "replace")
                values.append((f"{table.name}.{column.name}", str(value)))
    return values


def _pk_confirm(emulator_url: str, client_secret: str, number: str) -> requests.Response:
    """What Stripe.js posts to confirm a PaymentIntent with card details."""
    intent_id = client_secret.split("_secret_")[0]
    return requests.post(f"{emulator_url}/v1/payment_intents/{intent_id}/confirm", data={
        "key": STRIPE_TEST_PUBLISHABLE_KEY, "client_secret": client_secret,
        "payment_method_data[type]": "card", "payment_method_data[card][number]": number,
        "payment_method_data[card][exp_month]": "12",
        "payment_method_data[card][exp_year]": "2031",
        "payment_method_data[card][cvc]": CVC,
        "return_url": "http://127.0.0.1/checkout/complete"}, timeout=10)


def _wait_for_webhooks(minimum: int, timeout: float = 15.0) -> int:
    from payments_site.extensions import db
    from payments_site.models import WebhookEvent

    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        db.session.expire_all()
        count = db.session.query(WebhookEvent).count()
        if count >= minimum:
            time.sleep(0.5)  # let the rest of the burst land
            return int(db.session.query(WebhookEvent).count())
        time.sleep(0.1)
    return count


def test_full_flow_leaves_no_card_data_or_secret_anywhere(
        app, client, emulator, live_server, make_user, admin, product, api_token, run_jobs,
        mail_sink, caplog):
    """RELIABILITY 23: logs (DEBUG), every database column and every error body are clean."""
    caplog.set_level(logging.DEBUG)
    app.logger.setLevel(logging.DEBUG)
    app.config["PAYMENT_LIMIT"] = app.config["REFUND_LIMIT"] = "1000 per minute"
    response = requests.post(f"{emulator.url}/_config/webhooks/app", json={
        "url": f"{live_server.url}/api/webhooks/stripe", "secret": WEBHOOK_SECRET}, timeout=5)
    response.raise_for_status()
    error_bodies: list[str] = []

    # Register through the page (its own browser: `client` stays cookie-less for Bearer calls).
    browser = app.test_client()
    page = browser.get("/auth/register")
    response = browser.post("/auth/register", data={
        "email": "buyer@example.com", "name": "Card Holder", "password": DEFAULT_PASSWORD,
        "confirm": DEFAULT_PASSWORD, "csrf_token": csrf_token_from(page.get_data(as_text=True))})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    from payments_site.models import OutboundEmail, User

    # Receipts are emailed once the address is confirmed: open the link the sign-up sent.
    confirmation = app.extensions["sqlalchemy"].session.scalar(
        select(OutboundEmail).where(OutboundEmail.kind == "confirm_email"))
    assert follow_emailed_link(browser, confirmation.body_text,
                               "/auth/confirm/").status_code == 302

    buyer = app.extensions["sqlalchemy"].session.scalar(
        select(User).where(User.email == "buyer@example.com"))

    # Saved card, a payment with it, receipt, an admin refund (the shared helper).
    objects = buy_and_refund(client, emulator.url, buyer, admin, product, api_token, run_jobs,
                             card=MASTERCARD)
    tokens = list(objects.tokens_issued)
    auth = bearer(objects.token)

    # A new card, confirmed in "the browser" with the client secret, then the return page.
    response = client.post("/api/payments/process", headers=auth, json={
        "items": [{"product_id": product.id, "quantity": 5}], "save_payment_method": True})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    confirmed = _pk_confirm(emulator.url, body["client_secret"], VISA)
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "succeeded"

    # A decline with a new card, and a decline error from the API.
    response = client.post("/api/payments/process", headers=auth, json={
        "items": [{"product_id": product.id, "quantity": 7}]})
    assert response.status_code == 201
    declined = _pk_confirm(emulator.url, response.get_json()["client_secret"], DECLINED)
    assert declined.status_code == 402

    # A saved card that attaches but is declined when charged: our API's 402 body.
    response = client.post("/api/payments/methods/setup-intent", headers=auth, json={})
    seti = response.get_json()["client_secret"].split("_secret_")[0]
    sdk = stripe_client(emulator.url)
    method = sdk.v1.payment_methods.create({"type": "card", "card": {
        "number": CHARGE_FAILS, "exp_month": 12, "exp_year": 2030, "cvc": CVC}})
    sdk.v1.setup_intents.confirm(seti, {"payment_method": method.id})
    response = client.post("/api/payments/methods/save", headers=auth,
                           json={"setup_intent_id": seti})
    assert response.status_code == 201, response.get_json()
    response = client.post("/api/payments/process", headers=auth, json={
        "items": [{"product_id": product.id, "quantity": 9}],
        "payment_method_id": response.get_json()["payment_method"]["id"]})
    assert response.status_code == 402, response.get_json()
    error_bodies.append(response.get_data(as_text=True))

    # Card data sent where it does not belong must not be echoed or stored.
    for path, payload in [
        ("/api/payments/process", {"items": [{"product_id": product.id, "quantity": 1}],
                                   "payment_method_id": VISA, "card_number": VISA,
                                   "cvc": CVC}),
        ("/api/payments/process", {"items": VISA}),
        ("/api/payments/methods/save", {"payment_method_id": f"pm_{VISA}"}),
        ("/api/payments/methods/default", {"payment_method_id": VISA, "cvc": CVC}),
        ("/api/payments/refund", {"payment_id": VISA, "amount": int(VISA)}),
    ]:
        response = client.post(path, headers=auth, json=payload)
        assert response.status_code >= 400, (path, response.status_code)
        error_bodies.append(response.get_data(as_text=True))
    response = client.post("/api/auth/token", json={"email": VISA, "password": CVC})
    error_bodies.append(response.get_data(as_text=True))
    response = client.get(f"/api/payments/{VISA}", headers=auth)
    error_bodies.append(response.get_data(as_text=True))
    response = client.post("/api/webhooks/stripe", data=f'{{"card": "{VISA}"}}',
                           headers={"Stripe-Signature": f"t=1,v1={WEBHOOK_SECRET}"})
    assert response.status_code == 400
    error_bodies.append(response.get_data(as_text=True))

    # Webhooks arrive over HTTP from the emulator; the worker applies them and sends email.
    assert _wait_for_webhooks(5) >= 5
    run_jobs()
    response = client.post(f"/api/payments/{objects.payment_id}/receipt/resend", headers=auth)
    assert response.status_code == 202
    run_jobs()
    assert len(mail_sink.wait_for(3)) >= 3

    from payments_site.extensions import db
    from payments_site.models import OutboundEmail, Payment, Receipt, WebhookEvent

    db.session.expire_all()
    assert db.session.query(WebhookEvent).filter(WebhookEvent.status == "processed").count()
    assert db.session.query(Receipt).count() >= 2
    assert db.session.query(OutboundEmail).count() >= 3
    assert db.session.query(Payment).filter(Payment.status == "succeeded").count() >= 2

    problems: list[str] = []
    for record in caplog.records:
        text = record.getMessage() + "\n" + (record.exc_text or "")
        problems += [f"log {record.name}: {p} in {text[:160]!r}" for p in findings(text, tokens)]
    assert len(caplog.records) > 50, "expected a DEBUG log of the whole flow"
    for where, value in _all_text_in_database():
        problems += [f"db {where}: {p}" for p in findings(value, tokens)]
    for body in error_bodies:
        problems += [f"error body: {p}" for p in findings(body, tokens)]
    for raw in mail_sink.raw:
        problems += [f"email: {p}" for p in findings(raw.decode("utf-8", "replace"), tokens)]
    assert problems == []
