"""What a customer does in the browser tests, written once: log in, type a card, pay, and
the checks every page must pass (no sideways scroll, nothing cut off)."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.conftest import DEFAULT_PASSWORD

FRAME = 'iframe[name^="__privateStripeFrame"]'
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
WIDTHS = {"1280": DESKTOP, "390": PHONE}


def log_in(page: Any, base: str, user: Any) -> None:
    page.goto(f"{base}/auth/login")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def fill_card(page: Any, number: str, postal_code: str = "10001") -> None:
    """Type a test card into the Payment Element (Stripe's iframe)."""
    frame = page.frame_locator(FRAME)
    frame.get_by_label("Card number").fill(number)
    frame.get_by_label("Expiration date").fill("12 / 34")
    frame.get_by_label("Security code").fill("123")
    postal = frame.get_by_label("Postal code")
    if postal.is_visible():
        postal.fill(postal_code)


def pay(page: Any) -> None:
    button = page.locator("#pay-button")
    expect(button).to_be_enabled()
    button.click()


def expect_success(page: Any) -> str:
    """Wait for the "payment was successful" page; returns the payment's id."""
    expect(page.get_by_role("heading", name=re.compile("payment was successful"))).to_be_visible()
    match = re.search(r"payment=(pay_[A-Za-z0-9]+)", page.url)
    assert match, page.url
    return match.group(1)


def plain(text: str | None) -> str:
    """Text with the narrow and no-break spaces of dates and money made ordinary."""
    return re.sub(r"[\u00a0\u202f]", " ", text or "")


# The elements that stick out to the right of the window (to say what to fix).
OVERFLOWING = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
  .slice(0, 8)
  .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
            (e.className && typeof e.className === 'string' ? '.' + e.className.trim()
             .replace(/ +/g, '.') : '') + ' right=' + Math.round(e.getBoundingClientRect().right))
"""


def assert_no_sideways_scroll(page: Any) -> None:
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], (f"{page.url} scrolls sideways: {widths[0]} > {widths[1]} "
                                    f"px; sticking out: {page.evaluate(OVERFLOWING)}")


# The boxes that cut `element` off: the window, and every ancestor that clips its overflow
# (a sideways-scrolling table's wrapper, a card with overflow hidden).
CLIPPED_BY = """element => {
  const box = element.getBoundingClientRect();
  const cut = [];
  if (box.left < -0.5 || box.right > window.innerWidth + 0.5) cut.push('the window');
  for (let up = element.parentElement; up; up = up.parentElement) {
    if (getComputedStyle(up).overflowX === 'visible') continue;
    const frame = up.getBoundingClientRect();
    if (box.left < frame.left - 0.5 || box.right > frame.right + 0.5)
      cut.push(up.tagName.toLowerCase() + '.' + [...up.classList].join('.'));
  }
  return cut;
}"""


def assert_in_view(page: Any, locator: Any, what: str) -> None:
    """`locator` is visible and nothing cuts it off sideways: not the window's edge, not a
    scrolling or clipping box around it."""
    expect(locator).to_be_visible()
    cut = locator.evaluate(CLIPPED_BY)
    assert not cut, f"{what} is cut off by {cut} at {page.viewport_size['width']} px"
