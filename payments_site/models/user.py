"""Customers and admins."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from payments_site.models.base import Base, UTCDateTime, utcnow

ROLES = ("customer", "admin")


class User(UserMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default="customer")
    locale: Mapped[str] = mapped_column(String(16), default="en_US")
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When the owner opened the link sent to `email` (None: not confirmed yet). Receipts are
    # only emailed to a confirmed address.
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Every session cookie and Bearer token names the version it was issued under; raising
    # it (log out, password change or reset, email change, "sign out everywhere") ends them
    # all at once, on every node, with no extra query: the row is loaded anyway.
    credential_version: Mapped[int] = mapped_column(default=1, server_default="1")

    def get_id(self) -> str:
        """What the session cookie keeps: the id and the credential version it was made
        under (`security.load_user` refuses a version that is no longer current)."""
        return f"{self.id}.{self.credential_version}"

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    def set_password(self, password: str) -> None:
        # scrypt is a memory-hard KDF; werkzeug salts it and records the parameters.
        self.password_hash = generate_password_hash(password, method="scrypt")

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}>"
