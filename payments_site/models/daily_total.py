"""Daily totals per currency, rolled up by the worker, for the admin overview.

One row per UTC day and currency: the payments made that day and how they ended, the
revenue they brought, and the refunds made that day. Rebuilt from the payment and refund rows
(never added to), so a roll-up run twice or late only ever writes the same sums again.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, String
from sqlalchemy.orm import Mapped, mapped_column

from payments_site.models.base import Base, UTCDateTime, utcnow


class DailyTotal(Base):
    __tablename__ = "daily_totals"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    payments: Mapped[int] = mapped_column(default=0)  # created that day, any status
    succeeded: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    canceled: Mapped[int] = mapped_column(default=0)
    revenue: Mapped[int] = mapped_column(BigInteger, default=0)  # minor units, succeeded
    refunds: Mapped[int] = mapped_column(default=0)  # refunds made that day that succeeded
    refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
