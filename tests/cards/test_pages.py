"""The /account/cards page: list with badges, make default, remove with confirmation."""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import select

from payments_site.extensions import db
from payments_site.models import PaymentMethod
from tests.cards.conftest import MASTERCARD, VISA


def default_ids(user):
    db.session.expire_all()
    return [m.stripe_payment_method_id for m in db.session.scalars(
        select(PaymentMethod).where(PaymentMethod.user_id == user.id,
                                    PaymentMethod.is_default.is_(True)))]


def test_cards_page_needs_login(client):
    response = client.get("/account/cards")
    assert response.status_code == 302
    assert "/auth/login" in response.headers["Location"]


def test_cards_page_lists_cards_with_badges_and_the_add_form(login_as, customer, save_card):
    session = login_as(customer)
    today = date.today()
    soon_month, soon_year = (today.month % 12) + 1, today.year + (today.month == 12)
    visa = save_card(session, VISA)
    save_card(session, MASTERCARD, exp_month=soon_month, exp_year=soon_year)
    response = session.get("/account/cards")
    assert response.status_code == 200
    assert response.headers["Cache-Control"].startswith("no-store")
    html = response.get_data(as_text=True)
    assert "Visa" in html and "4242" in html and "Expires 12/2030" in html
    assert "Mastercard" in html and f"Expires {soon_month:02d}/{soon_year}" in html
    assert html.count('badge badge-default">Default') == 1
    assert html.count("Expires soon") == 1
    assert f'data-payment-method="{visa["id"]}"' in html
    # The add form: Stripe.js from the configured origin and the page's own script only.
    assert 'id="add-card-form"' in html and 'id="payment-element"' in html
    assert 'data-setup-intent-url="/api/payments/methods/setup-intent"' in html
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, "inline script"
    assert " style=" not in html and " on" + "click=" not in html
    assert "/static/js/cards.js" in html


def test_empty_page_invites_to_add_a_card(login_as, customer):
    html = login_as(customer).get("/account/cards").get_data(as_text=True)
    assert "no saved cards yet" in html


def test_make_default_form(login_as, customer, save_card):
    session = login_as(customer)
    save_card(session, VISA)
    second = save_card(session, MASTERCARD)
    url = f"/account/cards/{second['id']}/default"
    assert session.client.post(url).status_code == 403  # no CSRF token
    assert default_ids(customer) != [second["id"]]
    response = session.client.post(url, data={"csrf_token": session.csrf_token})
    assert response.status_code == 302
    assert default_ids(customer) == [second["id"]]
    page = session.get(response.headers["Location"]).get_data(as_text=True)
    assert "Mastercard ending 4444 is now your default card." in page


def test_remove_asks_for_confirmation_first(login_as, customer, save_card):
    session = login_as(customer)
    card = save_card(session, VISA)
    confirm = session.get(f"/account/cards/{card['id']}/remove")
    assert confirm.status_code == 200
    html = confirm.get_data(as_text=True)
    assert "Remove Visa ending 4242?" in html
    assert f'action="/account/cards/{card["id"]}/remove"' in html
    assert db.session.scalar(select(PaymentMethod)) is not None  # GET removed nothing
    assert session.client.post(f"/account/cards/{card['id']}/remove").status_code == 403
    response = session.client.post(f"/account/cards/{card['id']}/remove",
                                   data={"csrf_token": session.csrf_token})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.scalar(select(PaymentMethod)) is None
    page = session.get("/account/cards").get_data(as_text=True)
    assert "Visa ending 4242 was removed." in page


def test_another_users_card_pages_are_404(login_as, customer, make_user, save_card):
    owner = login_as(make_user())
    theirs = save_card(owner, VISA)
    session = login_as(customer)
    assert session.get(f"/account/cards/{theirs['id']}/remove").status_code == 404
    for action in ("remove", "default"):
        response = session.client.post(f"/account/cards/{theirs['id']}/{action}",
                                        data={"csrf_token": session.csrf_token})
        assert response.status_code == 404
    db.session.expire_all()
    assert [m.stripe_payment_method_id for m in db.session.scalars(select(PaymentMethod))] \
        == [theirs["id"]]


def test_return_url_saves_the_setup_intent(login_as, customer, confirmed_setup):
    """Stripe sends the customer back to return_url when a setup needed a redirect."""
    session = login_as(customer)
    intent_id = confirmed_setup(session, VISA)
    response = session.get(f"/account/cards?setup_intent={intent_id}"
                           f"&setup_intent_client_secret=x&redirect_status=succeeded")
    assert response.status_code == 302 and response.headers["Location"] == "/account/cards"
    assert "Visa ending 4242 is saved." in session.get("/account/cards").get_data(as_text=True)
    db.session.expire_all()
    assert db.session.scalar(select(PaymentMethod)).last4 == "4242"


def test_return_url_with_someone_elses_setup_intent_saves_nothing(login_as, customer,
                                                                  make_user, confirmed_setup):
    theirs = confirmed_setup(login_as(make_user()), VISA)
    session = login_as(customer)
    response = session.get(f"/account/cards?setup_intent={theirs}")
    assert response.status_code == 302
    assert "No such setup intent." in session.get("/account/cards").get_data(as_text=True)
    assert db.session.scalar(select(PaymentMethod)) is None
