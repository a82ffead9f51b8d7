"""Outbound email: one row per message, so a message is sent once and its failures are visible."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from payments_site.models.base import Base, UTCDateTime, utcnow

EMAIL_STATUSES = ("pending", "sent", "failed")


class OutboundEmail(Base):
    __tablename__ = "outbound_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Fixed before the first attempt, so a repeated send is the very same message.
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(255))
    receipt_id: Mapped[int | None] = mapped_column(ForeignKey("receipts.id"), index=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), index=True)
    body_text: Mapped[str] = mapped_column(Text, default="")
    # Stored with the row (not re-rendered or re-read from config) so every attempt sends
    # byte-identical content.
    body_html: Mapped[str | None] = mapped_column(Text)
    sender: Mapped[str] = mapped_column(String(320), default="")
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
