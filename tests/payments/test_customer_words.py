"""Customers read plain words (Paid, Not completed, Partially refunded · $5.00…); Stripe's
statuses stay on the admin pages and in the API."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from payments_site.customer_status import customer_status
from payments_site.extensions import db
from payments_site.models import Payment, PaymentItem, Refund, utcnow


@dataclass
class State:
    status: str
    amount: int = 5000
    amount_refunded: int = 0
    currency: str = "usd"
    stripe_dispute_id: str | None = None
    dispute_status: str | None = None


@pytest.mark.parametrize(("state", "key", "label"), [
    (State("succeeded"), "paid", "Paid"),
    (State("processing"), "processing", "Processing"),
    (State("requires_action"), "not_completed", "Not completed"),
    (State("requires_payment_method"), "not_completed", "Not completed"),
    (State("failed"), "failed", "Failed"),
    (State("canceled"), "canceled", "Canceled"),
    (State("succeeded", amount_refunded=5000), "refunded", "Refunded"),
    (State("succeeded", amount_refunded=500), "partially_refunded",
     "Partially refunded · $5.00"),
    (State("succeeded", amount=1500, amount_refunded=500, currency="jpy"),
     "partially_refunded", "Partially refunded · ¥500"),
    (State("succeeded", stripe_dispute_id="dp_1", dispute_status="needs_response"),
     "disputed", "Disputed"),
    (State("succeeded", amount_refunded=500, stripe_dispute_id="dp_1",
           dispute_status="lost"), "disputed", "Disputed"),
    # A dispute the merchant won, or an inquiry that closed, no longer holds the money.
    (State("succeeded", stripe_dispute_id="dp_1", dispute_status="won"), "paid", "Paid"),
    (State("succeeded", stripe_dispute_id="dp_1", dispute_status="warning_closed"),
     "paid", "Paid"),
])
def test_each_payment_state_has_one_plain_word(state, key, label):
    found = customer_status(state)
    assert (found.key, found.label.replace("\u00a0", " ")) == (key, label)
    assert found.badge == f"badge badge-{key.replace('_', '-')}"


def test_partially_refunded_names_the_amount_in_the_customers_locale():
    found = customer_status(State("succeeded", amount_refunded=500, currency="eur"), "de_DE")
    assert found.label.replace("\u00a0", " ") == "Partially refunded · 5,00 €"


# --- on the pages -----------------------------------------------------------------------------

# Stripe's words, and the old page's phrases, that must not reach a customer.
STRIPE_WORDS = re.compile(r"requires[ _]payment[ _]method|requires[ _]action|succeeded|"
                          r"full refund|partial refund|refund_status", re.IGNORECASE)


def _payment(user, product, status, *, refunded=0, **extra):
    payment = Payment(user_id=user.id, status=status, amount=4000, currency="usd",
                      cart_hash=f"words-{status}-{refunded}", description="Ceramic mug",
                      amount_refunded=refunded, refund_reserved=refunded,
                      succeeded_at=utcnow() if status == "succeeded" else None, **extra)
    payment.items = [PaymentItem(product_id=product.id, name="Ceramic mug", quantity=2,
                                 unit_amount=2000)]
    db.session.add(payment)
    if refunded:
        db.session.flush()
        db.session.add(Refund(payment_id=payment.id, amount=refunded, currency="usd",
                              status="succeeded", reason="requested_by_customer"))
    db.session.commit()
    return payment


@pytest.fixture
def history(customer, product):
    return {
        "paid": _payment(customer, product, "succeeded"),
        "partially_refunded": _payment(customer, product, "succeeded", refunded=500),
        "refunded": _payment(customer, product, "succeeded", refunded=4000),
        "failed": _payment(customer, product, "failed", failure_code="card_declined",
                           failure_message="Your card was declined."),
        "not_completed": _payment(customer, product, "requires_payment_method"),
        "authenticating": _payment(customer, product, "requires_action"),
        "processing": _payment(customer, product, "processing"),
        "canceled": _payment(customer, product, "canceled"),
        "disputed": _payment(customer, product, "succeeded", stripe_dispute_id="dp_x",
                             dispute_status="needs_response"),
    }


def _visible_text(html: str) -> str:
    """The page without what no reader meets: scripts, class names, links, ids, form values."""
    without_markup = re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.S)
    return re.sub(r'\s(class|data-[a-z-]+|href|id|for|name|value)="[^"]*"', "", without_markup)


def test_history_and_detail_pages_speak_plain_words(login_as, customer, history):
    session = login_as(customer)
    html = session.get("/account/payments").get_data(as_text=True)
    rows = dict(re.findall(r'<tr data-payment-id="(pay_\w+)" data-status="(\w+)"', html))
    # Canceled payments are left out of the default view and shown under their filter.
    assert rows == {p.public_id: {"authenticating": "not_completed"}.get(kind, kind)
                    for kind, p in history.items() if kind != "canceled"}
    canceled = session.get("/account/payments?status=canceled").get_data(as_text=True)
    text = _visible_text(html + canceled).replace("\u00a0", " ")
    for label in ("Paid", "Partially refunded · $5.00", "Refunded", "Failed",
                  "Not completed", "Processing", "Canceled", "Disputed"):
        assert f">{label}</span>" in text, label
    assert not STRIPE_WORDS.search(text), STRIPE_WORDS.search(text)

    for kind, payment in history.items():
        page = _visible_text(session.get(f"/account/payments/{payment.public_id}")
                             .get_data(as_text=True))
        assert not STRIPE_WORDS.search(page), (kind, STRIPE_WORDS.search(page))
    detail = session.get(f"/account/payments/{history['partially_refunded'].public_id}") \
        .get_data(as_text=True).replace("\u00a0", " ")
    assert "Partially refunded · $5.00" in detail and "Paid after refunds" in detail


def test_the_history_filter_reads_in_plain_words(login_as, customer, history):
    session = login_as(customer)
    html = session.get("/account/payments").get_data(as_text=True)
    options = re.findall(r'<option value="(\w*)"[^>]*>([^<]+)</option>', html)
    assert options == [("", "All but canceled"), ("succeeded", "Paid"),
                       ("processing", "Processing"), ("not_completed", "Not completed"),
                       ("failed", "Failed"), ("canceled", "Canceled")]

    def shown(query: str) -> set[str]:
        page = session.get(f"/account/payments?status={query}")
        assert page.status_code == 200, query
        return set(re.findall(r'data-payment-id="(pay_\w+)"', page.get_data(as_text=True)))

    # One plain word stands for both unfinished statuses; the API's values still work.
    assert shown("not_completed") == {history["not_completed"].public_id,
                                      history["authenticating"].public_id}
    assert shown("requires_action") == {history["authenticating"].public_id}
    assert shown("failed") == {history["failed"].public_id}
    assert 'value="not_completed" selected' in \
        session.get("/account/payments?status=not_completed").get_data(as_text=True)


@pytest.mark.parametrize("query, message", [
    *[(query, "There is no such status to show: pick one from the list.")
      for query in ("paid", "Not completed", "refunded", "not_completed,failed")],
    # A NUL byte is refused at the edge, before the page reads the filter.
    ("succeeded%00", "status contains a character that is not allowed"),
])
def test_the_history_filter_refuses_what_it_does_not_know(login_as, customer, query, message):
    response = login_as(customer).get(f"/account/payments?status={query}")
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert message in text
    assert not STRIPE_WORDS.search(_visible_text(text))


def test_the_api_keeps_stripes_statuses(login_as, customer, history):
    body = login_as(customer).get("/api/payments/history?limit=100").get_json()
    assert {p["status"] for p in body["data"]} == {
        "succeeded", "failed", "requires_payment_method", "requires_action", "processing",
        "canceled"}
    assert login_as(customer).get("/api/payments/history?status=not_completed") \
        .status_code == 400


def test_admin_pages_keep_stripes_statuses(login_as, admin, history):
    session = login_as(admin)
    html = session.get("/admin/payments").get_data(as_text=True)
    assert "requires payment method" in html and "succeeded" in html
