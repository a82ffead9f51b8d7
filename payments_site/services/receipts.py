"""Receipts and refund notes: a gap-free number per series and year, a PDF rendered once, emailed.

Numbering: the sequence row is incremented (`UPDATE … RETURNING`) in the same transaction as the
receipt INSERT, so the row lock serialises concurrent workers and a rolled-back attempt (for
instance a duplicate job hitting the unique `source_key`) gives its number back. The PDF is
rendered inside that transaction because it prints the number; it is stored and never rendered
again. The document's email row is inserted in that same transaction too, so a receipt never
exists without the email that delivers it (a job lost or killed after the commit only delays
the send: the sweeper queues pending emails again).
"""

from __future__ import annotations

import hashlib
import io
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from flask import current_app, render_template
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import undefer

from payments_site.customer_status import WORDS
from payments_site.db import finish_reading, unit_of_work
from payments_site.errors import InvalidRequest, NotFound
from payments_site.extensions import db
from payments_site.models import OutboundEmail, Payment, Receipt, Refund, User, utcnow
from payments_site.money import format_money
from payments_site.services import accounts, audit, emails
from payments_site.times import format_day, format_moment, merchant_timezone

log = logging.getLogger(__name__)

FONTS_DIR = Path(__file__).resolve().parent.parent / "fonts"
PDF_FONT = FONTS_DIR / "DejaVuSans.ttf"
NUMBER_PREFIX = {"receipt": "", "refund_note": "CN-"}
PDF_TEMPLATE = {"receipt": "pdf/receipt.html", "refund_note": "pdf/refund_note.html"}
EMAIL_TEMPLATE = {"receipt": "email/receipt", "refund_note": "email/refund_note"}
DOCUMENT_TITLE = {"receipt": "Receipt", "refund_note": "Refund note"}
CARD_BRANDS = {
    "amex": "American Express", "cartes_bancaires": "Cartes Bancaires",
    "diners": "Diners Club", "discover": "Discover", "eftpos_au": "eftpos", "jcb": "JCB",
    "mastercard": "Mastercard", "unionpay": "UnionPay", "visa": "Visa",
}


class ReceiptNotReady(RuntimeError):
    """The payment or refund has not succeeded (yet): the job fails and RQ retries it."""


class ReceiptRenderError(RuntimeError):
    """xhtml2pdf could not render the document."""


# --- issuing ----------------------------------------------------------------------------------

def issue_payment_receipt(payment_id: int) -> Receipt:
    """The receipt of a succeeded payment: created once, then emailed once."""
    payment = db.session.get(Payment, payment_id)
    if payment is None or payment.status != "succeeded":
        raise ReceiptNotReady(f"payment {payment_id} has not succeeded")
    receipt = _issue("receipt", f"payment:{payment.id}", payment, None)
    queue_receipt_email(receipt)
    return receipt


def issue_refund_note(refund_id: int) -> Receipt:
    """The refund note of a succeeded refund: its own series, created once, emailed once."""
    refund = db.session.get(Refund, refund_id)
    if refund is None or refund.status != "succeeded":
        raise ReceiptNotReady(f"refund {refund_id} has not succeeded")
    receipt = _issue("refund_note", f"refund:{refund.id}", refund.payment, refund)
    queue_receipt_email(receipt)
    return receipt


def format_number(series: str, year: int, sequence: int) -> str:
    """`2026-000042` for receipts, `CN-2026-000007` for refund notes."""
    return f"{NUMBER_PREFIX[series]}{year}-{sequence:06d}"


def _issue(series: str, source_key: str, payment: Payment, refund: Refund | None) -> Receipt:
    existing = _by_source_key(source_key)
    if existing is not None:
        return existing
    payment_id, refund_id = payment.id, refund.id if refund else None
    context = _document_context(payment, refund)
    zone = merchant_timezone()
    email_inputs = _email_inputs(payment, refund)
    # End the read transaction: on SQLite the numbering transaction must begin with its write
    # (a WAL reader that later writes fails instead of waiting for the lock).
    finish_reading()

    issued_at = utcnow()
    # Numbered in the merchant's calendar year, the year of the date the document bears.
    year = issued_at.astimezone(zone).year
    try:
        with unit_of_work():
            sequence = _next_sequence(series, year)
            # Holding the sequence lock now: a duplicate job that committed meanwhile is
            # visible, so give the number back instead of rendering for nothing.
            if _by_source_key(source_key) is not None:
                raise _IssuedMeanwhile
            number = format_number(series, year, sequence)
            pdf = render_pdf(PDF_TEMPLATE[series], number=number,
                             issued_on=_pdf_text(lambda loc: format_day(issued_at, zone, loc),
                                                 context["locale"]),
                             **context)
            receipt = Receipt(number=number, series=series, year=year,
                              sequence=sequence, source_key=source_key, payment_id=payment_id,
                              refund_id=refund_id, pdf=pdf,
                              sha256=hashlib.sha256(pdf).hexdigest(), size=len(pdf),
                              created_at=issued_at)
            db.session.add(receipt)
            db.session.flush()  # the receipt's id names its email
            if email_inputs.address_confirmed:
                db.session.add(emails.new_email(**_receipt_email_fields(
                    series, number, issued_at, receipt.id, email_inputs)))
    except (IntegrityError, _IssuedMeanwhile):
        # Another worker issued this receipt first; rolling back returned our number.
        existing = _by_source_key(source_key)
        if existing is None:
            raise
        return existing
    log.info("issued %s %s for %s", series, number, source_key)
    return receipt


class _IssuedMeanwhile(Exception):
    """A duplicate job issued the document while this one waited for the number."""


def _next_sequence(series: str, year: int) -> int:
    """Take the next number of (series, year); the row stays locked until commit/rollback."""
    params = {"series": series, "year": year}
    db.session.execute(text(
        "INSERT INTO receipt_sequences (series, year, last_value) VALUES (:series, :year, 0) "
        "ON CONFLICT (series, year) DO NOTHING"), params)
    return int(db.session.execute(text(
        "UPDATE receipt_sequences SET last_value = last_value + 1 "
        "WHERE series = :series AND year = :year RETURNING last_value"), params).scalar_one())


def _by_source_key(source_key: str) -> Receipt | None:
    return db.session.scalar(select(Receipt).where(Receipt.source_key == source_key)
                             .execution_options(populate_existing=True))


# --- the PDF ----------------------------------------------------------------------------------

def render_pdf(template: str, **context: Any) -> bytes:
    """Render an HTML template to PDF with the embedded Unicode font; nothing fetched remotely."""
    # lazy import: xhtml2pdf (with reportlab) takes ~0.4 s to load; only the receipts worker
    # renders PDFs, so web processes never pay for it.
    from xhtml2pdf import pisa
    from xhtml2pdf.config.resources import ResourceAccessPolicy

    html = render_template(template, fonts_dir=FONTS_DIR.as_posix(), **context)
    output = io.BytesIO()
    # The document may only read our fonts: customer-supplied text can never make the
    # renderer fetch a URL or read another file.
    policy = ResourceAccessPolicy(base_dir=FONTS_DIR, allow_remote=False)
    result = pisa.CreatePDF(html, dest=output, encoding="utf-8", resource_policy=policy)
    if result.err:
        raise ReceiptRenderError(f"rendering {template} failed ({result.err} errors)")
    return output.getvalue()


def _document_context(payment: Payment, refund: Refund | None) -> dict[str, Any]:
    """Everything the PDF prints, formatted for the customer's locale, as plain values.

    Times are the merchant's (MERCHANT_TIMEZONE), and the document names that zone.
    """
    config = current_app.config
    user = payment.user
    locale = _locale(user.locale)
    currency = payment.currency
    zone = merchant_timezone()

    def money(amount: int) -> str:
        return _pdf_text(lambda loc: format_money(amount, currency, loc), locale)

    def moment(value: datetime | None) -> str:
        if value is None:
            return ""
        return _pdf_text(lambda loc: format_moment(value, zone, loc), locale)

    context: dict[str, Any] = {
        "locale": locale,
        "merchant": {"name": config["MERCHANT_NAME"], "address": config["MERCHANT_ADDRESS"],
                     "tax_id": config["MERCHANT_TAX_ID"]},
        "customer": {"name": user.name, "email": user.email},
        "time_zone": zone.key,
        "payment": {"public_id": payment.public_id,
                    "reference": payment.stripe_payment_intent_id or "",
                    "paid_on": moment(payment.succeeded_at or payment.created_at),
                    "card_brand": card_brand_name(payment.card_brand),
                    "card_last4": payment.card_last4 or "",
                    "total": money(payment.amount)},
        "items": [{"name": item.name, "quantity": item.quantity,
                   "unit_price": money(item.unit_amount), "total": money(item.total)}
                  for item in payment.items],
        "currency": currency.upper(),
        "receipt_number": payment.receipt.number if payment.receipt else None,
    }
    if refund is not None:
        # Refunds up to and including this one, so a note issued late still shows what
        # remained right after this refund.
        refunded = sum(r.amount for r in payment.refunds
                       if r.status == "succeeded" and r.id <= refund.id)
        context["refund"] = {"public_id": refund.public_id,
                             "reference": refund.stripe_refund_id or "",
                             "reason": (refund.reason or "").replace("_", " ").capitalize(),
                             "amount": money(refund.amount),
                             "refunded_to_date": money(refunded),
                             "refunded_before": (money(refunded - refund.amount)
                                                 if refunded > refund.amount else ""),
                             "remaining": money(max(payment.amount - refunded, 0)),
                             "refunded_on": moment(refund.updated_at)}
    return context


def card_brand_name(brand: str | None) -> str:
    if not brand:
        return "Card"
    return CARD_BRANDS.get(brand.lower(), brand.replace("_", " ").title())


def _locale(value: str | None) -> str:
    try:
        return str(Locale.parse(value or "en_US"))
    except (UnknownLocaleError, ValueError, TypeError):
        return "en_US"


@cache
def _font_codepoints() -> frozenset[int]:
    # lazy import: reportlab comes with xhtml2pdf (see render_pdf); loaded where PDFs are made.
    from reportlab.pdfbase.ttfonts import TTFontFile

    return frozenset(TTFontFile(str(PDF_FONT)).charToGlyph)


def pdf_can_print(value: str) -> bool:
    """Whether the embedded font has a glyph for every character of `value`."""
    codepoints = _font_codepoints()
    return all(ord(ch) in codepoints for ch in value if not ch.isspace())


def _pdf_text(format_for: Callable[[str], str], locale: str) -> str:
    """A value formatted for the customer's locale, unless the font cannot print it.

    DejaVu Sans has no CJK glyphs, so a ja_JP date (2026年3月5日) or the full-width ￥ would
    print as empty boxes; those fall back to the English format rather than lose information.
    """
    value = format_for(locale)
    if pdf_can_print(value):
        return value
    value = value.replace("\uffe5", "\u00a5")
    return value if pdf_can_print(value) else format_for("en_US")


# --- email ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _EmailLine:
    name: str
    quantity: int
    unit_amount: int
    total: int


@dataclass(frozen=True)
class _EmailInputs:
    """What a document's email says about the payment, read as plain values."""

    payment_id: int
    payment_public_id: str
    to: str
    # Receipts are emailed only to a confirmed address; until then they wait (the sweeper
    # sends recent ones once the owner confirms).
    address_confirmed: bool
    customer_name: str
    locale: str
    currency: str
    amount: int  # the refund's amount on a refund note, else the payment's
    total: int
    card: str
    receipt_number: str | None
    items: tuple[_EmailLine, ...]
    paid_at: datetime | None
    refunded_at: datetime | None  # refund notes only
    refunded_to_date: int  # refund notes: refunds up to and including this one


def _email_inputs(payment: Payment, refund: Refund | None) -> _EmailInputs:
    user = payment.user
    refunded = (sum(r.amount for r in payment.refunds
                    if r.status == "succeeded" and r.id <= refund.id)
                if refund is not None else 0)
    return _EmailInputs(
        payment_id=payment.id, payment_public_id=payment.public_id, to=user.email,
        address_confirmed=accounts.receipts_may_go_to(user),
        customer_name=user.name or user.email,
        locale=_locale(user.locale), currency=payment.currency,
        amount=refund.amount if refund is not None else payment.amount, total=payment.amount,
        card=(f"{card_brand_name(payment.card_brand)} ending in {payment.card_last4}"
              if payment.card_last4 else ""),
        receipt_number=payment.receipt.number if payment.receipt else None,
        items=tuple(_EmailLine(item.name, item.quantity, item.unit_amount, item.total)
                    for item in payment.items),
        paid_at=payment.succeeded_at or payment.created_at,
        refunded_at=refund.updated_at if refund is not None else None,
        refunded_to_date=max(refunded, refund.amount if refund is not None else 0))


def _receipt_email_fields(series: str, number: str, issued_at: datetime, receipt_id: int,
                          inputs: _EmailInputs, *, dedupe_key: str | None = None,
                          kind: str | None = None) -> dict[str, Any]:
    """The arguments of `emails.new_email` / `emails.send_later` for one document.

    The email repeats what the PDF says (items, totals, card, the time in the merchant's
    zone, named) and links to the payment's page on the site.
    """
    merchant_name = current_app.config["MERCHANT_NAME"]
    zone = merchant_timezone()

    def money(amount: int) -> str:
        return format_money(amount, inputs.currency, inputs.locale)

    def moment(value: datetime | None) -> str:
        return format_moment(value, zone, inputs.locale) if value is not None else ""

    remaining = max(inputs.total - inputs.refunded_to_date, 0)
    if series == "refund_note":
        status = (WORDS["refunded"] if remaining == 0 else
                  f"{WORDS['partially_refunded']} · {money(inputs.refunded_to_date)}")
    else:
        status = WORDS["paid"]
    context = {
        "merchant_name": merchant_name,
        "customer_name": inputs.customer_name,
        "number": number,
        "amount": money(inputs.amount),
        "total": money(inputs.total),
        "card": inputs.card,
        "issued_on": format_day(issued_at, zone, inputs.locale),
        "receipt_number": inputs.receipt_number,
        "items": [{"name": line.name, "quantity": line.quantity,
                   "unit_price": money(line.unit_amount), "total": money(line.total)}
                  for line in inputs.items],
        "paid_at": moment(inputs.paid_at),
        "refunded_at": moment(inputs.refunded_at),
        "time_zone": zone.key,
        "status": status,
        "refunded_before": (money(inputs.refunded_to_date - inputs.amount)
                            if inputs.refunded_to_date > inputs.amount else ""),
        "refunded_total": money(inputs.refunded_to_date),
        "remaining": money(remaining),
        "payment_public_id": inputs.payment_public_id,
    }
    base = EMAIL_TEMPLATE[series]
    return {"dedupe_key": dedupe_key or f"receipt:{receipt_id}", "kind": kind or series,
            "to": inputs.to, "subject": f"{DOCUMENT_TITLE[series]} {number} from {merchant_name}",
            "text_body": render_template(f"{base}.txt", **context),
            "html_body": render_template(f"{base}.html", **context),
            "payment_id": inputs.payment_id, "receipt_id": receipt_id}


def queue_receipt_email(receipt: Receipt, *, dedupe_key: str | None = None,
                        kind: str | None = None) -> OutboundEmail | None:
    """Email the stored PDF to the payment's owner, once per dedupe key; None (nothing
    sent) while the owner's address is not confirmed.

    With the default key this finds the row issuing recorded and queues it if still pending
    (or, for a receipt issued before the row was part of issuing, records it now).
    """
    refund = db.session.get(Refund, receipt.refund_id) if receipt.refund_id else None
    inputs = _email_inputs(receipt.payment, refund)
    if not inputs.address_confirmed:
        log.info("%s %s held until its owner confirms the address", receipt.series,
                 receipt.number)
        return None
    return emails.send_later(**_receipt_email_fields(
        receipt.series, receipt.number, receipt.created_at, receipt.id,
        inputs, dedupe_key=dedupe_key, kind=kind))


def resend_payment_receipt(payment_public_id: str, viewer: User) -> OutboundEmail:
    """Email the stored receipt of a payment again (owner or admin); a new message each time."""
    payment = db.session.scalar(select(Payment).where(Payment.public_id == payment_public_id))
    if payment is None or not _may_view(payment, viewer):
        raise NotFound("No such payment.")
    receipt = payment.receipt
    if receipt is None:
        raise NotFound("This payment has no receipt yet. It is issued a moment after the "
                       "payment succeeds.")
    if not accounts.receipts_may_go_to(payment.user):
        raise InvalidRequest("Receipts are emailed only to a confirmed address: open the link "
                             "we sent to it first (Settings can send it again).")
    # Committed with the email row below: who asked for it, for the payment's timeline.
    audit.record("receipt.resent", actor=viewer, payment=payment, amount=payment.amount,
                 currency=payment.currency, receipt_number=receipt.number,
                 to=payment.user.email)
    email = queue_receipt_email(receipt, dedupe_key=f"receipt:{receipt.id}:resend:"
                                                    f"{uuid.uuid4().hex}", kind="receipt_resend")
    assert email is not None  # the address is confirmed (checked above)
    return email


# --- reading ----------------------------------------------------------------------------------

def receipt_for_download(number: str, viewer: User) -> Receipt:
    """The receipt with its PDF, for its owner or an admin; NotFound for anyone else."""
    receipt = db.session.scalar(select(Receipt).options(undefer(Receipt.pdf))
                                .where(Receipt.number == number))
    if receipt is None or not _may_view(receipt.payment, viewer):
        raise NotFound("No such receipt.")
    return receipt


@dataclass(frozen=True)
class ReceiptListing:
    number: str
    series: str
    title: str
    issued_at: datetime
    amount: int
    currency: str
    payment_public_id: str


def receipts_for_user(user: User, page: int = 1, per_page: int = 25) -> Pagination:
    """The user's receipts and refund notes, newest first, one page of ReceiptListing rows."""
    query = (select(Receipt)
             .join(Payment, Receipt.payment_id == Payment.id)
             .where(Payment.user_id == user.id)
             .order_by(Receipt.created_at.desc(), Receipt.id.desc()))
    pagination = db.paginate(query, page=page, per_page=per_page, error_out=False,
                             count=True)
    # Refund notes show the refunded amount; look those refunds up for this page only.
    receipts: list[Receipt] = list(pagination.items)
    refund_ids = [r.refund_id for r in receipts if r.refund_id]
    refunds = {r.id: r for r in db.session.scalars(
        select(Refund).where(Refund.id.in_(refund_ids)))} if refund_ids else {}
    pagination.items = [
        ReceiptListing(
            number=r.number, series=r.series, title=DOCUMENT_TITLE[r.series],
            issued_at=r.created_at,
            amount=refunds[r.refund_id].amount if r.refund_id in refunds else r.payment.amount,
            currency=r.payment.currency, payment_public_id=r.payment.public_id)
        for r in receipts]
    return pagination


def _may_view(payment: Payment, viewer: User) -> bool:
    return bool(viewer.is_authenticated and (viewer.is_admin or payment.user_id == viewer.id))
