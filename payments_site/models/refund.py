"""Refunds: money given back against a captured payment."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal, get_args

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from payments_site.models.base import Base, UTCDateTime, public_id, utcnow

if TYPE_CHECKING:
    from payments_site.models.payment import Payment

RefundStatus = Literal["pending", "succeeded", "failed"]
RefundReason = Literal["requested_by_customer", "duplicate", "fraudulent"]
REFUND_STATUSES: tuple[RefundStatus, ...] = get_args(RefundStatus)
REFUND_REASONS: tuple[RefundReason, ...] = get_args(RefundReason)


def _refund_public_id() -> str:
    return public_id("ref_")


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),
                      UniqueConstraint("payment_id", "request_token"))

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=_refund_public_id)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    reason: Mapped[str | None] = mapped_column(String(32))
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    # Names the request that asked for it (services.idempotency.key_token): an Idempotency-
    # Key, or the admin form's key, asked again finds this refund instead of a second one.
    request_token: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    # Indexed: the worker's daily roll-up finds the days whose refunds changed by it.
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow,
                                                 onupdate=utcnow, index=True)

    payment: Mapped[Payment] = relationship(back_populates="refunds")
