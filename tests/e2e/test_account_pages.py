"""The account pages in Chromium at 1280 and 390 px: settings (with its errors and the
reminder to confirm the address), forgot password, a reset link's page and a confirmation
link's page; no sideways scroll, no axe-core violation, a screenshot of each
(`pages-<width>-<name>` under test-results/screenshots/)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from payments_site.extensions import db
from payments_site.models import OutboundEmail
from tests.conftest import DEFAULT_PASSWORD
from tests.e2e.flows import WIDTHS, log_in
from tests.e2e.test_customer_pages import check_page
from tests.helpers import emailed_link

pytestmark = pytest.mark.browser


def _link(kind: str, route: str) -> str:
    db.session.expire_all()
    email = db.session.scalar(select(OutboundEmail).where(OutboundEmail.kind == kind)
                              .order_by(OutboundEmail.id.desc()))
    assert email is not None, kind
    return emailed_link(email.body_text, route)


@pytest.mark.parametrize("width", WIDTHS)
def test_account_pages(open_page, live_server, make_user, width: str) -> None:
    base = live_server.url
    user = make_user("fresh@example.com", name="Fresh Customer", verified=False)
    page = open_page(viewport=WIDTHS[width])
    log_in(page, base, user)

    page.goto(f"{base}/account/settings")
    expect(page.get_by_text("Please confirm your email address")).to_be_visible()
    expect(page.get_by_role("heading", name="Sign out everywhere")).to_be_visible()
    check_page(page, width, "settings")

    # A wrong current password and a weak new one: the errors sit by their fields.
    def change_password(current: str, new: str) -> None:
        form = page.locator("form", has=page.get_by_role("button", name="Change the password"))
        form.get_by_label("Current password").fill(current)
        form.get_by_label("New password", exact=True).fill(new)
        form.get_by_label("Repeat the new password").fill(new)
        form.get_by_role("button", name="Change the password").click()

    change_password("not-my-password", "velvet-otter-harbour-92")
    expect(page.get_by_text("Your current password is not correct.")).to_be_visible()
    change_password(DEFAULT_PASSWORD, "password12")
    expect(page.get_by_text("This password is too easy to guess.")).to_be_visible()
    check_page(page, width, "settings-errors")

    # The reminder's button sends a confirmation link; its page confirms the address.
    page.get_by_role("button", name="Send the link again").first.click()
    expect(page.get_by_text("We sent a new link")).to_be_visible()
    page.goto(f"{base}{_link('confirm_email', '/auth/confirm/')}")
    check_page(page, width, "confirm-email")
    page.get_by_role("button", name="Confirm my address").click()
    expect(page.get_by_text("your email address is confirmed")).to_be_visible()
    expect(page.get_by_text("Please confirm your email address")).to_have_count(0)

    # Signed out: forgot password, its answer, and the reset link's page.
    page.get_by_role("button", name="Log out").click()
    page.goto(f"{base}/auth/forgot")
    check_page(page, width, "forgot")
    page.get_by_label("Email").fill(user.email)
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    check_page(page, width, "forgot-sent")
    page.goto(f"{base}{_link('password_reset', '/auth/reset/')}")
    check_page(page, width, "reset")
    page.get_by_label("New password", exact=True).fill("velvet-otter-harbour-92")
    page.get_by_label("Repeat the new password").fill("velvet-otter-harbour-92")
    page.get_by_role("button", name="Save the new password").click()
    expect(page.get_by_text("Your password is changed and you are signed in")).to_be_visible()
    page.goto(f"{base}/auth/reset/not-a-real-token")
    check_page(page, width, "link-invalid")

