"""Payments (one per checkout attempt = one PaymentIntent), their items and saved cards."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal, get_args

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from payments_site.models.base import Base, UTCDateTime, public_id, utcnow

if TYPE_CHECKING:
    from payments_site.models.receipt import Receipt
    from payments_site.models.refund import Refund
    from payments_site.models.user import User

PaymentStatus = Literal["requires_payment_method", "requires_action", "processing",
                        "succeeded", "canceled", "failed"]
PAYMENT_STATUSES: tuple[PaymentStatus, ...] = get_args(PaymentStatus)
# Terminal statuses never change again: a late or replayed event cannot move them back.
TERMINAL_STATUSES = frozenset({"succeeded", "canceled"})


# Dispute states in which Stripe refunds the charge again.
REFUNDABLE_DISPUTE_STATUSES = frozenset({"won", "warning_closed"})


def _payment_public_id() -> str:
    return public_id("pay_")


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("amount_refunded >= 0 AND amount_refunded <= amount",
                        name="refunded_within_amount"),
        CheckConstraint("refund_reserved >= 0 AND refund_reserved <= amount",
                        name="reserved_within_amount"),
        # Keyset pagination of a customer's history, newest first, with or without a status.
        Index("ix_payments_user_created", "user_id", "created_at", "id"),
        Index("ix_payments_user_status_created", "user_id", "status", "created_at", "id"),
        # One payment per checkout attempt (a rendering of the checkout page) and cart: double
        # clicks and retries of that attempt find it; a new page is a new purchase.
        UniqueConstraint("user_id", "checkout_attempt", "cart_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=_payment_public_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(32), default="requires_payment_method",
                                        index=True)
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    # Refunds Stripe has confirmed, and refunds reserved (pending + confirmed): the cap.
    amount_refunded: Mapped[int] = mapped_column(default=0)
    refund_reserved: Mapped[int] = mapped_column(default=0)
    description: Mapped[str] = mapped_column(String(500), default="")
    # Hash of (user, items, card) so a double submit without an Idempotency-Key is detected.
    cart_hash: Mapped[str] = mapped_column(String(64), index=True)
    # The checkout page's attempt token (None for API clients that send none).
    checkout_attempt: Mapped[str | None] = mapped_column(String(64))
    # Flagged for the sweeper to cancel now (a payment nobody tried to pay, from older builds
    # that created one when the checkout page opened); hidden from the customer's history.
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(String(255), index=True)
    payment_method_id: Mapped[int | None] = mapped_column(
        ForeignKey("payment_methods.id", ondelete="SET NULL"), index=True)
    save_payment_method: Mapped[bool] = mapped_column(default=False)
    card_brand: Mapped[str | None] = mapped_column(String(32))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_decline_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    # Set when a Stripe call's outcome is unknown (retries exhausted): re-fetch before reuse.
    needs_reconcile: Mapped[bool] = mapped_column(default=False, index=True)
    # Server-side confirmations so far; names the Stripe idempotency key of the next one and,
    # bumped by a conditional UPDATE, lets exactly one concurrent request confirm.
    confirm_attempts: Mapped[int] = mapped_column(default=0)
    # PaymentIntent creates Stripe answered with a failure it saved under the key (a replayed
    # 500): each one ends that key, so the next create uses a new one (services/checkout.py).
    create_attempts: Mapped[int] = mapped_column(default=0)
    # Radar's verdict on the latest charge (`outcome`): admin pages only.
    outcome_type: Mapped[str | None] = mapped_column(String(32))
    risk_level: Mapped[str | None] = mapped_column(String(16))
    risk_score: Mapped[int | None]
    stripe_dispute_id: Mapped[str | None] = mapped_column(String(255), index=True)
    dispute_status: Mapped[str | None] = mapped_column(String(64))
    dispute_reason: Mapped[str | None] = mapped_column(String(64))
    dispute_evidence_due_by: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    # Indexed: the worker's daily roll-up finds the days whose payments changed by it.
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow,
                                                 onupdate=utcnow, index=True)
    succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)
    items: Mapped[list[PaymentItem]] = relationship(
        back_populates="payment", cascade="all, delete-orphan", order_by="PaymentItem.id",
        lazy="selectin")
    payment_method: Mapped[PaymentMethod | None] = relationship()
    refunds: Mapped[list[Refund]] = relationship(back_populates="payment",
                                                 order_by="Refund.id")
    receipts: Mapped[list[Receipt]] = relationship(back_populates="payment",
                                                   order_by="Receipt.id")

    @property
    def refundable_amount(self) -> int:
        """What can still be refunded: captured minus reserved (pending and done) refunds."""
        if self.status != "succeeded":
            return 0
        return self.amount - self.refund_reserved

    @property
    def refund_blocked_by_dispute(self) -> bool:
        """Stripe refuses refunds of a disputed charge (`charge_disputed`) until the dispute
        is won or the inquiry closed: the bank, not the merchant, decides the money then."""
        return self.stripe_dispute_id is not None and \
            self.dispute_status not in REFUNDABLE_DISPUTE_STATUSES

    @property
    def refund_status(self) -> str:
        if self.amount_refunded <= 0:
            return "none"
        return "full" if self.amount_refunded >= self.amount else "partial"

    @property
    def receipt(self) -> Receipt | None:
        for receipt in self.receipts:
            if receipt.series == "receipt":
                return receipt
        return None

    def __repr__(self) -> str:
        return f"<Payment {self.public_id} {self.status} {self.amount} {self.currency}>"


class PaymentItem(Base):
    __tablename__ = "payment_items"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"),
                                            index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int]
    unit_amount: Mapped[int]

    payment: Mapped[Payment] = relationship(back_populates="items")

    @property
    def total(self) -> int:
        return self.quantity * self.unit_amount


class PaymentMethod(Base):
    """A saved card: Stripe's id and display fields only, never card data."""

    __tablename__ = "payment_methods"
    __table_args__ = (UniqueConstraint("user_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    stripe_payment_method_id: Mapped[str] = mapped_column(String(255), unique=True)
    brand: Mapped[str] = mapped_column(String(32))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int]
    exp_year: Mapped[int]
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
