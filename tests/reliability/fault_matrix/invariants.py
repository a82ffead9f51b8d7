"""What must hold after every fault, one small check per invariant.

The books are read once (Stripe's PaymentIntents, charges and refunds; our payments, refunds,
receipts and receipt emails; the messages the SMTP sink received), then every registered
check looks at them and returns what it found: violations, one line each, and the figures
it counts. `check_invariants` runs them all.
"""

from __future__ import annotations

import email
import email.policy
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from payments_site.extensions import db
from payments_site.models import OutboundEmail, Payment, Receipt, Refund
from payments_site.services.payments import local_status
from tests.reliability.fault_matrix.load import metadata
from tests.reliability.fault_matrix.stack import MatrixStack


@dataclass
class Books:
    """Stripe's records and ours, read at one moment."""

    intents: list[Any]
    charges: dict[str, Any]
    stripe_refunds: dict[str, list[Any]]  # by charge id
    payments: list[Payment]
    refunds_of: dict[int, list[Refund]]  # by payment id
    receipts_of: dict[int, list[int]]  # receipt ids by payment id (series "receipt")
    mails_of: dict[int, list[OutboundEmail]]  # receipt emails by receipt id
    sink_ids: Counter[str]  # how often each Message-ID reached the SMTP sink

    @property
    def by_intent(self) -> dict[str, Payment]:
        return {p.stripe_payment_intent_id: p for p in self.payments
                if p.stripe_payment_intent_id}

    @property
    def intents_per_payment(self) -> Counter[str]:
        return Counter(metadata(intent, "payment_id") or "?" for intent in self.intents)


@dataclass
class Found:
    """What one check found: violation lines, and figures (see `Check`) it counted."""

    violations: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, line: str, *count_as: str) -> None:
        self.violations.append(line)
        for name in count_as:
            self.counts[name] += 1


@dataclass
class Check:
    """Every check's findings together, with the figures the matrix reports."""

    violations: list[str] = field(default_factory=list)
    payments: int = 0
    succeeded: int = 0
    receipts_emailed: int = 0
    same_message_repeats: int = 0
    over_refunds: int = 0
    inconsistent: int = 0
    duplicate_effects: int = 0


INVARIANTS: dict[str, Callable[[Books], Found]] = {}


def invariant(name: str) -> Callable[[Callable[[Books], Found]], Callable[[Books], Found]]:
    """Register a check under the invariant it guards."""

    def register(check: Callable[[Books], Found]) -> Callable[[Books], Found]:
        INVARIANTS[name] = check
        return check

    return register


# --- Stripe and us agree -----------------------------------------------------------------------

@invariant("every PaymentIntent at Stripe has its payment")
def intents_have_payments(books: Books) -> Found:
    found = Found()
    ours = books.by_intent
    for intent in books.intents:
        if intent.id not in ours:
            found.add(f"{intent.id} ({intent.status}, for {metadata(intent, 'payment_id')}) "
                      "has no local payment", "inconsistent")
    return found


def _refund_problems(books: Books, payment: Payment, charge: Any) -> list[str]:
    problems = []
    local = {r.stripe_refund_id: r for r in books.refunds_of[payment.id] if r.stripe_refund_id}
    for refund in books.stripe_refunds.get(str(charge.id) if charge else "", []):
        mine = local.get(refund.id)
        expected = {"succeeded": "succeeded", "pending": "pending"}.get(refund.status, "failed")
        if mine is None:
            problems.append(f"Stripe refund {refund.id} unknown locally")
        elif (mine.amount, mine.status) != (refund.amount, expected):
            problems.append(f"refund {mine.public_id} {mine.amount} {mine.status} != "
                            f"{refund.amount} {refund.status}")
    return problems


@invariant("status, amount, currency, refunded total and each refund equal Stripe's")
def payments_match_stripe(books: Books) -> Found:
    found = Found()
    ours = books.by_intent
    for intent in books.intents:
        payment = ours.get(intent.id)
        if payment is None:
            continue  # intents_have_payments reports it
        problems = []
        if payment.status != local_status(intent):
            problems.append(f"status {payment.status} != {local_status(intent)}")
        if (payment.amount, payment.currency) != (intent.amount, intent.currency):
            problems.append("amount/currency differ")
        charge = books.charges.get(str(intent.latest_charge)) if intent.latest_charge else None
        stripe_refunded = int(charge.amount_refunded) if charge else 0
        if payment.amount_refunded != stripe_refunded:
            problems.append(f"refunded {payment.amount_refunded} != {stripe_refunded}")
        problems += _refund_problems(books, payment, charge)
        if problems:
            found.add(f"{payment.public_id}: " + "; ".join(problems), "inconsistent")
    return found


@invariant("no payment has two PaymentIntents")
def one_intent_per_payment(books: Books) -> Found:
    found = Found()
    for owner, count in books.intents_per_payment.items():
        if owner != "?" and count > 1:
            found.add(f"{owner} has {count} PaymentIntents", "duplicate_effects")
    return found


@invariant("every intent a payment names exists at Stripe")
def payments_name_real_intents(books: Books) -> Found:
    found = Found()
    stripe_ids = {intent.id for intent in books.intents}
    for payment in books.payments:
        if payment.stripe_payment_intent_id and \
                payment.stripe_payment_intent_id not in stripe_ids:
            found.add(f"{payment.public_id} names an intent Stripe does not have")
    return found


@invariant("a succeeded payment has its PaymentIntent")
def succeeded_payments_have_intents(books: Books) -> Found:
    found = Found()
    owners = books.intents_per_payment
    for payment in books.payments:
        if payment.status == "succeeded" and payment.public_id not in owners:
            found.add(f"{payment.public_id} succeeded without an intent")
    return found


# --- refunds -----------------------------------------------------------------------------------

@invariant("refunds never add up to more than was captured")
def no_over_refunds(books: Books) -> Found:
    found = Found()
    for payment in books.payments:
        live = sum(r.amount for r in books.refunds_of[payment.id] if r.status != "failed")
        if live > payment.amount or payment.amount_refunded > payment.amount:
            found.add(f"{payment.public_id}: refunds {live} > captured {payment.amount}",
                      "over_refunds")
    return found


@invariant("no refund is left pending once the worker drained")
def no_pending_refunds(books: Books) -> Found:
    found = Found()
    for payment in books.payments:
        stuck = [r.public_id for r in books.refunds_of[payment.id] if r.status == "pending"]
        if stuck:
            found.add(f"{payment.public_id}: refunds still pending after drain: {stuck}")
    return found


# --- receipts and their emails -----------------------------------------------------------------

@invariant("every succeeded payment has exactly one receipt")
def one_receipt_per_payment(books: Books) -> Found:
    found = Found()
    for payment in books.payments:
        if payment.status != "succeeded":
            continue
        found.counts["succeeded"] += 1
        receipts = books.receipts_of[payment.id]
        if len(receipts) != 1:
            found.add(f"{payment.public_id}: {len(receipts)} receipts",
                      *(["duplicate_effects"] if len(receipts) > 1 else []))
    return found


@invariant("every receipt is emailed once: one row, sent, in the SMTP sink")
def one_email_per_receipt(books: Books) -> Found:
    """A repeat of the same Message-ID (a worker killed after the SMTP server accepted it) is
    counted, not a violation."""
    found = Found()
    for payment in books.payments:
        receipts = books.receipts_of[payment.id]
        if payment.status != "succeeded" or len(receipts) != 1:
            continue  # one_receipt_per_payment reports it
        mails = books.mails_of[receipts[0]]
        sent = [m for m in mails if m.status == "sent"]
        delivered = [m for m in sent if books.sink_ids[_message_id(m.message_id)] > 0]
        if len(mails) != 1 or len(sent) != 1 or len(delivered) != 1:
            found.add(f"{payment.public_id}: receipt emails rows={len(mails)} "
                      f"sent={len(sent)} in the SMTP sink={len(delivered)}",
                      *(["duplicate_effects"] if len(delivered) > 1 else []))
            continue
        found.counts["same_message_repeats"] += \
            books.sink_ids[_message_id(delivered[0].message_id)] - 1
        found.counts["receipts_emailed"] += 1
    return found


def _message_id(value: str | None) -> str:
    return str(value or "").strip().strip("<>")


# --- reading the books and running the checks --------------------------------------------------

def read_books(stack: MatrixStack) -> Books:
    """Stripe's side through the SDK, ours from the database (inside an app context)."""
    sdk = stack.sdk
    intents = list(sdk.v1.payment_intents.list({"limit": 100}).auto_paging_iter())
    charges = {c.id: c for c in sdk.v1.charges.list({"limit": 100}).auto_paging_iter()}
    stripe_refunds: dict[str, list[Any]] = defaultdict(list)
    for stripe_refund in sdk.v1.refunds.list({"limit": 100}).auto_paging_iter():
        stripe_refunds[str(stripe_refund.charge)].append(stripe_refund)
    sink_ids: Counter[str] = Counter()
    for raw in list(stack.mail.raw):
        message = email.message_from_bytes(raw, policy=email.policy.default)
        sink_ids[_message_id(message.get("Message-ID", ""))] += 1
    refunds_of: dict[int, list[Refund]] = defaultdict(list)
    for refund in db.session.query(Refund):
        refunds_of[refund.payment_id].append(refund)
    receipts_of: dict[int, list[int]] = defaultdict(list)
    for receipt_id, payment_id in db.session.query(Receipt.id, Receipt.payment_id).filter(
            Receipt.series == "receipt"):
        receipts_of[payment_id].append(receipt_id)
    mails_of: dict[int, list[OutboundEmail]] = defaultdict(list)
    for mail in db.session.query(OutboundEmail).filter(
            OutboundEmail.kind != "receipt_resend", OutboundEmail.receipt_id.is_not(None)):
        mails_of[int(mail.receipt_id or 0)].append(mail)
    return Books(
        intents=intents, charges=charges, stripe_refunds=stripe_refunds,
        payments=db.session.query(Payment).all(),
        refunds_of=refunds_of, receipts_of=receipts_of, mails_of=mails_of, sink_ids=sink_ids)


def check_invariants(stack: MatrixStack) -> Check:
    """Run every registered check on the books as they are now."""
    result = Check()
    with stack.app.app_context():
        books = read_books(stack)
        result.payments = len(books.payments)
        for check in INVARIANTS.values():
            found = check(books)
            result.violations += found.violations
            for name, count in found.counts.items():
                setattr(result, name, getattr(result, name) + count)
        db.session.remove()
    return result
