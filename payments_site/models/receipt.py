"""Receipts and refund notes: numbered gap-free per series and year, rendered once, kept."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from payments_site.models.base import Base, UTCDateTime, utcnow

if TYPE_CHECKING:
    from payments_site.models.payment import Payment

RECEIPT_SERIES = ("receipt", "refund_note")


class ReceiptSequence(Base):
    """The last number handed out per series and year; incremented under a row lock."""

    __tablename__ = "receipt_sequences"

    series: Mapped[str] = mapped_column(String(16), primary_key=True)
    year: Mapped[int] = mapped_column(primary_key=True)
    last_value: Mapped[int] = mapped_column(default=0)


class Receipt(Base):
    __tablename__ = "receipts"
    __table_args__ = (UniqueConstraint("series", "year", "sequence"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    series: Mapped[str] = mapped_column(String(16))
    year: Mapped[int]
    sequence: Mapped[int]
    # "payment:<id>" or "refund:<id>": one receipt per source, whatever runs twice.
    source_key: Mapped[str] = mapped_column(String(64), unique=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"), unique=True)
    pdf: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    emailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    payment: Mapped[Payment] = relationship(back_populates="receipts")

    @property
    def filename(self) -> str:
        return f"{self.number}.pdf"
