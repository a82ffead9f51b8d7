"""Money rules as people meet them: Stripe's minimum charge per currency, amounts typed into
the admin's refund form, and the reasons given when either is refused."""

from __future__ import annotations

import pytest

from payments_site.errors import InvalidRequest
from payments_site.money import InvalidAmount, parse_major_amount
from payments_site.services.catalog import create_product
from payments_site.services.pricing import total_problem


@pytest.mark.parametrize("currency, minimum, text", [
    ("sek", 300, "SEK3.00"), ("gbp", 30, "£0.30"), ("huf", 17500, "HUF175.00"),
])
def test_a_total_below_the_currencys_own_minimum_is_refused(currency, minimum, text):
    assert total_problem(minimum - 1, currency) == (
        f"The total is below the minimum charge of {text}.")
    assert total_problem(minimum, currency) is None
    # Currency codes are stored lower-case, but an upper-case one means the same minimum.
    assert total_problem(minimum - 1, currency.upper()) is not None


@pytest.mark.parametrize("text, currency, amount", [
    ("1,019.99", "usd", 101999), (" 1 019.99 ", "usd", 101999), ("19.9", "usd", 1990),
    ("12,000", "jpy", 12000), ("1.2", "bhd", 1200),
])
def test_typed_amounts_with_grouping_and_spaces_parse_exactly(text, currency, amount):
    assert parse_major_amount(text, currency) == amount


@pytest.mark.parametrize("text, currency, message", [
    ("", "usd", "Enter an amount such as 12.50."),
    ("12.x5", "usd", "Enter an amount such as 12.50."),
    # A full-width digit is a digit to Python and to Decimal, but not an amount we take.
    ("12.\uff15", "usd", "Enter an amount such as 12.50."),
    ("12.345", "usd", "USD amounts have at most 2 decimal places."),
    ("200.5", "jpy", "JPY amounts have no decimal places."),
])
def test_refused_amounts_say_why(text, currency, message):
    with pytest.raises(InvalidAmount) as refused:
        parse_major_amount(text, currency)
    assert str(refused.value) == message


@pytest.mark.parametrize("currency, message", [
    (None, "currency must be a 3-letter ISO code"),
    ("xyz", "unsupported currency: 'xyz'"),
])
def test_a_price_in_a_currency_we_do_not_take_is_refused_with_the_reason(app, currency,
                                                                          message):
    with pytest.raises(InvalidRequest) as refused:
        create_product("Mug", 500, currency)
    assert (refused.value.status, refused.value.param, refused.value.message) == (
        400, "currency", message)
