"""No card number anywhere in the database after saving (and failing to save) cards."""

from __future__ import annotations

import pytest
import stripe
from sqlalchemy import select

from payments_site.extensions import db
from tests.cards.conftest import (
    AMEX,
    DECLINED,
    MASTERCARD,
    THREE_DS,
    VISA,
    authenticate_setup,
    new_card,
    seti_id,
)
from tests.helpers import card_numbers


def card_like_numbers(text: str) -> list[str]:
    return card_numbers(text, embedded=True)


def test_the_scanner_finds_card_numbers():
    assert card_like_numbers(f"x {VISA} y") == [VISA]
    assert card_like_numbers("4242 4242 4242 4242") == [VISA]
    assert card_like_numbers(AMEX) == [AMEX]
    assert card_like_numbers("4242424242424241") == []  # Luhn-invalid
    assert card_like_numbers("pm_1234 2026-11-27") == []
    assert card_like_numbers(f"pm_1Ab{VISA}xyz") == [VISA]  # glued into an id: found
    # Inside a password hash's hex digest: random digits, not card data (seen in a KDF output).
    digest = "a" * 40 + "4559402393275420" + "b" * 72
    assert card_like_numbers(f"scrypt:32768:8:1$Salt0123${digest}") == []
    assert card_like_numbers(f"{digest[:40]}{VISA}Z") == [VISA]  # not a digest: found


def test_no_card_number_in_any_table_or_column(login_as, customer, sdk, emulator,
                                                save_card, api_token, client):
    session = login_as(customer)
    for number in (VISA, MASTERCARD, AMEX):
        save_card(session, number)
    save_card(session, VISA)  # a duplicate
    # A 3DS card, completed, and a declined one.
    secret = session.post("/api/payments/methods/setup-intent").get_json()["client_secret"]
    sdk.v1.setup_intents.confirm(seti_id(secret), {"payment_method": new_card(sdk, THREE_DS).id})
    authenticate_setup(emulator, seti_id(secret), secret)
    assert session.post("/api/payments/methods/save",
                        json={"setup_intent_id": seti_id(secret)}).status_code == 201
    with pytest.raises(stripe.CardError):
        secret = session.post("/api/payments/methods/setup-intent").get_json()["client_secret"]
        sdk.v1.setup_intents.confirm(seti_id(secret),
                                     {"payment_method": new_card(sdk, DECLINED).id})
    assert session.post("/api/payments/methods/save",
                        json={"setup_intent_id": seti_id(secret)}).status_code == 402
    # Clients that send card data to us anyway: refused, and not kept either.
    headers = {"Authorization": f"Bearer {api_token(customer)}"}
    assert client.post("/api/payments/methods/save", headers=headers,
                       json={"payment_method_id": VISA}).status_code == 400
    assert client.post("/api/payments/methods/save", headers=headers,
                       json={"card": {"number": MASTERCARD}}).status_code == 400
    listed = session.get("/api/payments/methods/list").get_json()["data"]
    assert len(listed) == 4

    db.session.expire_all()
    scanned_columns = 0
    hits = []
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)).mappings():
            for column, value in row.items():
                scanned_columns += 1
                if value is None:
                    continue
                text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                for number in card_like_numbers(text):
                    hits.append((table.name, column, number))
    assert scanned_columns > 0
    assert hits == []
