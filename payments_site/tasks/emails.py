"""Email jobs: deliver one stored outbound email; a sent one is never sent again."""

from __future__ import annotations


def send_email(email_id: int) -> str:
    from payments_site.services import emails

    return emails.deliver(email_id)
