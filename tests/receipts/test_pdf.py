"""The receipt PDF: everything a customer and a tax office need, in any script, font embedded."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date

from payments_site.money import format_money
from payments_site.services import receipts
from payments_site.services.receipts import PDF_FONT, pdf_can_print
from tests.receipts.conftest import embedded_fonts, pdf_text, squash


def test_receipt_pdf_holds_every_required_field(app, make_payment, customer):
    payment = make_payment(items=[("Ceramic mug", 2, 1999), ("Pour-over kettle", 1, 5900)])
    receipt = receipts.issue_payment_receipt(payment.id)
    text = pdf_text(receipt.pdf)

    assert receipt.pdf.startswith(b"%PDF-")
    assert receipt.size == len(receipt.pdf)
    assert receipt.sha256 == hashlib.sha256(receipt.pdf).hexdigest()
    for expected in [
        app.config["MERCHANT_NAME"], app.config["MERCHANT_ADDRESS"],
        app.config["MERCHANT_TAX_ID"], receipt.number,
        format_date(receipt.created_at, "long", locale="en_US"),
        customer.name, customer.email,
        "Ceramic mug", "$19.99", "$39.98", "Pour-over kettle", "$59.00", "$98.98",
        "USD", "Visa", "4242", payment.stripe_payment_intent_id,
    ]:
        assert expected in text, expected
    # Quantities sit in their own column, next to the item they belong to.
    assert "Ceramic mug 2 $19.99 $39.98" in text
    assert "Pour-over kettle 1 $59.00 $59.00" in text


def test_the_receipt_is_dated_by_the_merchants_calendar(app, make_payment):
    """The date printed is the day in the merchant's time zone, not in UTC: a zone chosen so
    that its calendar day differs from UTC's right now (ahead late in the UTC day, behind
    early in it)."""
    zone = "Pacific/Kiritimati" if datetime.now(UTC).hour >= 10 else "Pacific/Pago_Pago"
    app.config["MERCHANT_TIMEZONE"] = zone
    receipt = receipts.issue_payment_receipt(make_payment().id)
    text = pdf_text(receipt.pdf)

    local_day = format_date(receipt.created_at.astimezone(ZoneInfo(zone)), "long",
                            locale="en_US")
    assert local_day != format_date(receipt.created_at, "long", locale="en_US")
    assert f"Date {local_day}" in text


def test_money_and_dates_follow_the_customer_locale(app, make_payment, make_user):
    user = make_user("kunde@example.com", name="Jana Kunde", locale="de_DE")
    payment = make_payment(user, currency="eur", items=[("Matcha tin", 3, 123456)])
    receipt = receipts.issue_payment_receipt(payment.id)
    text = pdf_text(receipt.pdf)

    assert squash(format_money(370368, "eur", "de_DE")) in text  # 3.703,68 €
    assert squash(format_money(123456, "eur", "de_DE")) in text  # 1.234,56 €
    assert format_date(receipt.created_at, "long", locale="de_DE") in text  # 5. März 2026
    assert "EUR" in text


@pytest.mark.parametrize(("name", "currency", "locale", "amount", "symbol"), [
    ("Łukasz Żółć", "eur", "pl_PL", 4999, "€"),
    ("Дмитрий Иванов", "jpy", "en_US", 1500, "¥"),
    ("José Müller", "inr", "en_IN", 199900, "₹"),
])
def test_names_and_currency_symbols_render_in_the_embedded_font(
        app, make_payment, make_user, name, currency, locale, amount, symbol):
    user = make_user(name=name, locale=locale)
    payment = make_payment(user, currency=currency, items=[("Sencha tea", 1, amount)])
    text = pdf_text(receipts.issue_payment_receipt(payment.id).pdf)

    assert name in text
    assert symbol in text
    assert squash(format_money(amount, currency, locale)) in text
    # No character was swapped for a fallback box, and the font really has every glyph.
    assert "\u25a0" not in text and "\ufffd" not in text
    assert pdf_can_print(name + symbol)


def test_the_unicode_font_is_embedded(app, make_payment, make_user):
    user = make_user(name="Дмитрий", locale="ru_RU")
    receipt = receipts.issue_payment_receipt(make_payment(user, currency="eur").id)
    fonts = embedded_fonts(receipt.pdf)
    dejavu = {name: embedded for name, embedded in fonts.items() if "DejaVuSans" in name}
    assert dejavu, fonts
    assert all(dejavu.values()), fonts
    assert PDF_FONT.name == "DejaVuSans.ttf" and PDF_FONT.exists()
    assert (PDF_FONT.parent / "LICENSE-DejaVu.txt").exists()


def test_the_shipped_font_covers_the_scripts_we_promise():
    for sample in ["Łukasz Żółć", "Дмитрий", "José Müller", "€ ¥ ₹ £ ₩ ₺", "•••• 4242"]:
        assert pdf_can_print(sample), sample
    assert not pdf_can_print("山田")  # the check itself can fail


def test_a_locale_the_font_cannot_print_falls_back_to_english(app, make_payment, make_user):
    user = make_user(name="Yamada Taro", locale="ja_JP")
    payment = make_payment(user, currency="jpy", items=[("Sencha tea", 2, 1500)])
    receipt = receipts.issue_payment_receipt(payment.id)
    text = pdf_text(receipt.pdf)
    assert "¥3,000" in text  # ja_JP would print the full-width ￥, which DejaVu lacks
    assert format_date(receipt.created_at, "long", locale="en_US") in text
    assert pdf_can_print(text)


def test_an_unknown_locale_does_not_break_the_receipt(app, make_payment, make_user):
    user = make_user(name="Nobody", locale="xx_YY")
    receipt = receipts.issue_payment_receipt(make_payment(user).id)
    assert "$64.48" in pdf_text(receipt.pdf)


def test_refund_note_shows_refunded_amount_and_remaining_total(app, make_payment,
                                                               make_refund, customer):
    payment = make_payment(items=[("Ceramic mug", 2, 1999)])
    receipt = receipts.issue_payment_receipt(payment.id)
    first = receipts.issue_refund_note(make_refund(payment, 1000).id)
    second = receipts.issue_refund_note(make_refund(payment, 500).id)

    text = pdf_text(first.pdf)
    for expected in ["REFUND NOTE", first.number, receipt.number, customer.name,
                     customer.email, app.config["MERCHANT_NAME"], app.config["MERCHANT_TAX_ID"],
                     payment.stripe_payment_intent_id, "Original total USD $39.98",
                     "Refunded USD $10.00", "Remaining total $29.98", "Visa", "4242"]:
        assert expected in text, expected

    later = pdf_text(second.pdf)
    assert "Refunded earlier $10.00" in later
    assert "Refunded USD $5.00" in later
    assert "Remaining total $24.98" in later
