"""The emulator's Stripe.js in a real browser, on a tiny host page.

A static page (served from a thread on 127.0.0.1, so on a different origin from the
emulator, as the site is) loads Stripe.js from the emulator, mounts the Payment Element
and confirms intents that the test created server-side with the official SDK. Each test
names the Stripe behaviour it mirrors. Every test leaves a screenshot of its final state
under ``test-results/screenshots/``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import requests
import stripe
from playwright.sync_api import expect

from tests.browser import HostSite, screenshot

PUBLISHABLE_KEY = "pk_test_emulator"
SECRET_KEY = "sk_test_123"

CARD_SUCCESS = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_3DS = "4000002500003155"
CARD_3DS_ALWAYS = "4000002760003184"

FRAME = 'iframe[name^="__privateStripeFrame"]'

# --------------------------------------------------------------------------------------
# The host page: HTML (with a strict CSP), its script and styles.
# --------------------------------------------------------------------------------------

PAGE_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta http-equiv="Content-Security-Policy" content="default-src 'self'; \
script-src 'self' {emulator}; style-src 'self'; connect-src 'self' {emulator}; \
frame-src {emulator}; img-src 'self' data:; form-action 'self'; base-uri 'none'">
  <title>Stripe.js emulator test page</title>
  <link rel="stylesheet" href="/page.css">
</head>
<body data-publishable-key="{pk}">
  <main>
    <h1>Checkout</h1>
    <form id="payment-form" action="/submit" method="post">
      <input type="hidden" name="order" value="42">
      <label>Email <input name="email" type="email" value="buyer@example.com"></label>
      <div id="payment-element"></div>
      <button id="submit" type="submit">Pay</button>
      <button id="next-action" type="button">Authenticate saved card</button>
      <button id="saved-card" type="button">Pay with saved card</button>
    </form>
    <p>complete: <output id="complete">false</output></p>
    <pre id="result" aria-live="polite"></pre>
  </main>
  <script src="{emulator}/js.stripe.com/v3/"></script>
  <script src="/app.js"></script>
</body>
</html>
"""

PAGE_CSS = """
body { font-family: system-ui, sans-serif; margin: 0; background: #f6f8fa; color: #30313d; }
main { max-width: 480px; margin: 32px auto; padding: 24px; background: #fff;
       border: 1px solid #e3e8ee; border-radius: 8px; }
h1 { font-size: 22px; margin-top: 0; }
form > * { display: block; margin-bottom: 16px; }
label input { display: block; width: 100%; box-sizing: border-box; padding: 8px;
              border: 1px solid #d5dbe1; border-radius: 5px; font: inherit; }
button { font: inherit; padding: 10px 16px; border-radius: 6px; border: 1px solid #0570de;
         background: #0570de; color: #fff; }
pre { white-space: pre-wrap; word-break: break-all; font-size: 12px; background: #f6f8fa;
      padding: 8px; }
"""

# Drives Stripe.js the way a checkout page does; results land in window.__result.
APP_JS = """
(() => {
  const params = new URLSearchParams(location.search);
  const mode = params.get('mode') || 'payment';
  const clientSecret = params.get('client_secret');
  const redirect = params.get('redirect') || 'if_required';
  const stripe = Stripe(document.body.dataset.publishableKey);
  window.changeEvents = [];

  function show(result) {
    window.__result = JSON.parse(JSON.stringify(result));
    document.getElementById('result').textContent = JSON.stringify(result, null, 2);
  }

  let elements = null;
  if (mode === 'payment' || mode === 'setup') {
    elements = stripe.elements({clientSecret, appearance: {variables: {colorPrimary: '#0570de'}}});
    const options = params.get('postal') === 'never'
      ? {fields: {billingDetails: {address: {postalCode: 'never'}}}} : {};
    const paymentElement = elements.create('payment', options);
    paymentElement.on('ready', () => { document.body.dataset.ready = '1'; });
    paymentElement.on('change', (event) => {
      window.changeEvents.push(event);
      document.getElementById('complete').textContent = String(event.complete);
    });
    paymentElement.mount('#payment-element');
    window.paymentElement = paymentElement;
  } else {
    document.body.dataset.ready = '1';
  }

  document.getElementById('payment-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    window.__result = undefined;
    const confirmParams = {return_url: location.origin + '/complete'};
    if (params.get('postal') === 'never') {
      confirmParams.payment_method_data = {billing_details: {address: {postal_code: '75001'}}};
    }
    const result = mode === 'setup'
      ? await stripe.confirmSetup({elements, confirmParams, redirect})
      : await stripe.confirmPayment({elements, confirmParams, redirect});
    show(result);
  });
  document.getElementById('next-action').addEventListener('click', async () => {
    window.__result = undefined;
    show(await stripe.handleNextAction({clientSecret}));
  });
  document.getElementById('saved-card').addEventListener('click', async () => {
    window.__result = undefined;
    show(await stripe.confirmCardPayment(clientSecret,
                                         {payment_method: params.get('payment_method')}));
  });
})();
"""


# For the harness's own test: an inline script (blocked by the CSP) and a script that throws.
CSP_PROBE_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'self'">
<title>CSP probe</title></head>
<body><p>probe</p><script>document.title = 'inline ran';</script>
<script src="/boom.js"></script></body></html>
"""


@pytest.fixture
def site(emulator: Any) -> Iterator[HostSite]:
    host = HostSite({
        "/checkout.html": lambda: (
            PAGE_HTML.format(emulator=emulator.url, pk=PUBLISHABLE_KEY), "text/html"),
        "/app.js": (APP_JS, "application/javascript"),
        "/page.css": (PAGE_CSS, "text/css"),
        "/complete": ("<!DOCTYPE html><title>Complete</title><h1>Done</h1>", "text/html"),
        "/csp-probe.html": (CSP_PROBE_HTML, "text/html"),
        "/boom.js": ("throw new Error('boom from the probe page');", "application/javascript"),
    })
    yield host
    host.stop()


@pytest.fixture
def client(emulator: Any) -> stripe.StripeClient:
    return stripe.StripeClient(
        SECRET_KEY, base_addresses={"api": emulator.url}, max_network_retries=0
    )


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def create_payment_intent(client: stripe.StripeClient, **extra: Any) -> Any:
    params: dict[str, Any] = {"amount": 2599, "currency": "eur",
                              "allowed_payment_method_types": ["card"]}
    params.update(extra)
    return client.v1.payment_intents.create(params=params)  # type: ignore[arg-type]


def create_setup_intent(client: stripe.StripeClient, customer_id: str) -> Any:
    params: dict[str, Any] = {"customer": customer_id, "allowed_payment_method_types": ["card"]}
    return client.v1.setup_intents.create(params=params)  # type: ignore[arg-type]


def save_card(client: stripe.StripeClient, customer_id: str, number: str) -> Any:
    """A card saved on a customer (server-side, as the emulator allows raw test cards)."""
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }  # type: ignore[typeddict-item]
    )
    return client.v1.payment_methods.attach(method.id, params={"customer": customer_id})


def open_page(page: Any, site: HostSite, client_secret: str | None, **query: str) -> None:
    assert client_secret
    page.goto(f"{site.url}/checkout.html?" + urlencode({"client_secret": client_secret, **query}))
    page.wait_for_selector('body[data-ready="1"]')


def card_frame(page: Any) -> Any:
    return page.frame_locator(FRAME)


def fill_card(
    page: Any, number: str, expiry: str = "12 / 34", cvc: str = "123", postal: str = "10001"
) -> None:
    frame = card_frame(page)
    frame.get_by_label("Card number").fill(number)
    frame.get_by_label("Expiration date").fill(expiry)
    frame.get_by_label("Security code").fill(cvc)
    frame.get_by_label("Postal code").fill(postal)


def submit(page: Any) -> None:
    page.evaluate("() => { window.__result = undefined; }")
    page.get_by_role("button", name="Pay", exact=True).click()


def wait_result(page: Any) -> dict[str, Any]:
    page.wait_for_function("() => window.__result !== undefined")
    return page.evaluate("() => window.__result")  # type: ignore[no-any-return]


def three_d_secure(page: Any, button: str) -> None:
    dialog = page.get_by_role("dialog", name="3D Secure authentication")
    dialog.wait_for()
    dialog.get_by_role("button", name=button, exact=True).click()
    dialog.wait_for(state="detached")


def finish(page: Any, name: str) -> None:
    """Screenshot the final state; the page must have run without CSP violations or
    uncaught errors (a 402 from the API is logged by Chromium, that is expected)."""
    screenshot(page, f"emulator-stripejs-{name}")
    assert page.csp_violations == []
    unexpected = [e for e in page.console_errors if "Failed to load resource" not in e]
    assert unexpected == []


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------


@pytest.mark.browser
def test_card_4242_succeeds_without_authentication(
    page: Any, site: HostSite, client: stripe.StripeClient
) -> None:
    """Stripe: 4242 4242 4242 4242 succeeds; confirmPayment({redirect: 'if_required'})
    resolves {paymentIntent} with status 'succeeded'."""
    intent = create_payment_intent(client)
    open_page(page, site, intent.client_secret)
    fill_card(page, CARD_SUCCESS)
    submit(page)
    result = wait_result(page)

    assert "error" not in result, result
    assert result["paymentIntent"]["id"] == intent.id
    assert result["paymentIntent"]["status"] == "succeeded"
    server_side = client.v1.payment_intents.retrieve(intent.id)
    assert server_side.status == "succeeded"
    assert server_side.payment_method
    method = client.v1.payment_methods.retrieve(str(server_side.payment_method))
    assert method.card is not None and method.card.last4 == "4242"
    finish(page, "4242-succeeds")


@pytest.mark.browser
def test_declined_card_then_4242_on_same_payment_intent(
    page: Any, site: HostSite, client: stripe.StripeClient
) -> None:
    """Stripe: 4000 0000 0000 0002 is declined (card_error, card_declined,
    generic_decline) with error.payment_intent in requires_payment_method; the customer
    can then pay the same PaymentIntent with another card."""
    intent = create_payment_intent(client)
    open_page(page, site, intent.client_secret)
    fill_card(page, CARD_DECLINED)
    submit(page)
    result = wait_result(page)

    error = result["error"]
    assert error["type"] == "card_error"
    assert error["code"] == "card_declined"
    assert error["decline_code"] == "generic_decline"
    assert error["message"]
    assert error["payment_intent"]["id"] == intent.id
    assert error["payment_intent"]["status"] == "requires_payment_method"
    screenshot(page, "emulator-stripejs-declined")

    frame = card_frame(page)
    frame.get_by_label("Card number").fill(CARD_SUCCESS)
    submit(page)
    result = wait_result(page)
    assert "error" not in result, result
    assert result["paymentIntent"]["id"] == intent.id
    assert result["paymentIntent"]["status"] == "succeeded"
    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"
    finish(page, "declined-then-4242-succeeds")


@pytest.mark.browser
def test_3ds_card_complete_succeeds(page: Any, site: HostSite, client: stripe.StripeClient) -> None:
    """Stripe: 4000 0025 0000 3155 requires 3-D Secure; completing the challenge
    makes the PaymentIntent succeed."""
    intent = create_payment_intent(client)
    open_page(page, site, intent.client_secret)
    fill_card(page, CARD_3DS)
    submit(page)
    dialog = page.get_by_role("dialog", name="3D Secure authentication")
    dialog.wait_for()
    assert dialog.get_by_role("button").all_inner_texts() == ["Fail", "Complete"]
    screenshot(page, "emulator-stripejs-3ds-dialog")
    three_d_secure(page, "Complete")
    result = wait_result(page)

    assert "error" not in result, result
    assert result["paymentIntent"]["status"] == "succeeded"
    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"
    finish(page, "3ds-complete-succeeds")


@pytest.mark.browser
def test_3ds_card_fail_gives_authentication_failure(
    page: Any, site: HostSite, client: stripe.StripeClient
) -> None:
    """Stripe: failing the 3-D Secure challenge resolves {error} with code
    payment_intent_authentication_failure; the intent needs a new payment method."""
    intent = create_payment_intent(client)
    open_page(page, site, intent.client_secret)
    fill_card(page, CARD_3DS)
    submit(page)
    three_d_secure(page, "Fail")
    result = wait_result(page)

    error = result["error"]
    assert error["code"] == "payment_intent_authentication_failure"
    assert error["payment_intent"]["id"] == intent.id
    assert error["payment_intent"]["status"] == "requires_payment_method"
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"
    finish(page, "3ds-fail")


@pytest.mark.browser
def test_confirm_setup_attaches_card_to_customer(
    page: Any, site: HostSite, client: stripe.StripeClient
) -> None:
    """Stripe: confirmSetup with a SetupIntent for a customer saves the card: the
    SetupIntent succeeds and the PaymentMethod is attached to that customer."""
    customer = client.v1.customers.create(params={"email": "buyer@example.com"})
    setup = create_setup_intent(client, customer.id)
    open_page(page, site, setup.client_secret, mode="setup")
    fill_card(page, CARD_SUCCESS, expiry="0130")
    submit(page)
    result = wait_result(page)

    assert "error" not in result, result
    assert result["setupIntent"]["id"] == setup.id
    assert result["setupIntent"]["status"] == "succeeded"
    method_id = result["setupIntent"]["payment_method"]
    method = client.v1.payment_methods.retrieve(method_id)
    assert method.customer == customer.id
    assert method.card is not None and method.card.last4 == "4242"
    assert (method.card.exp_month, method.card.exp_year) == (1, 2030)
    saved = client.v1.customers.payment_methods.list(customer.id)
    assert [m.id for m in saved.data] == [method_id]
    finish(page, "confirm-setup-attaches-card")


@pytest.mark.browser
@pytest.mark.parametrize("outcome", ["Complete", "Fail"])
def test_confirm_setup_with_3ds_card(
    page: Any, site: HostSite, client: stripe.StripeClient, outcome: str
) -> None:
    """Stripe: saving 4000 0025 0000 3155 asks for 3-D Secure; "Complete" saves it
    (setupIntent succeeded), "Fail" resolves {error} with
    setup_intent_authentication_failure and error.setup_intent."""
    customer = client.v1.customers.create(params={"email": "buyer@example.com"})
    setup = create_setup_intent(client, customer.id)
    open_page(page, site, setup.client_secret, mode="setup")
    fill_card(page, CARD_3DS)
    submit(page)
    three_d_secure(page, outcome)
    result = wait_result(page)

    if outcome == "Complete":
        assert "error" not in result, result
        assert result["setupIntent"]["status"] == "succeeded"
        method = client.v1.payment_methods.retrieve(result["setupIntent"]["payment_method"])
        assert method.customer == customer.id
    else:
        assert result["error"]["code"] == "setup_intent_authentication_failure"
        assert result["error"]["setup_intent"]["id"] == setup.id
        assert result["error"]["setup_intent"]["status"] == "requires_payment_method"
    finish(page, f"confirm-setup-3ds-{outcome.lower()}")


@pytest.mark.browser
def test_handle_next_action_with_saved_3ds_card(
    page: Any, site: HostSite, client: stripe.StripeClient
) -> None:
    """Stripe: the server confirms a PaymentIntent with a saved card that needs
    3-D Secure on every charge (4000 0027 6000 3184) -> requires_action; the page calls
    handleNextAction({clientSecret}), the customer completes the challenge, succeeded."""
    customer = client.v1.customers.create(params={"email": "buyer@example.com"})
    method = save_card(client, customer.id, CARD_3DS_ALWAYS)
    intent = create_payment_intent(
        client,
        customer=customer.id,
        payment_method=method.id,
        confirm=True,
        return_url=f"{site.url}/complete",
    )
    assert intent.status == "requires_action"

    open_page(page, site, intent.client_secret, mode="next_action")
    page.get_by_role("button", name="Authenticate saved card").click()
    three_d_secure(page, "Complete")
    result = wait_result(page)

    assert "error" not in result, result
    assert result["paymentIntent"]["id"] == intent.id
    assert result["paymentIntent"]["status"] == "succeeded"
    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"
    finish(page, "handle-next-action-saved-3ds-card")


@pytest.mark.browser
def test_confirm_card_payment_with_saved_3ds_card(
    page: Any, site: HostSite, client: stripe.StripeClient
) -> None:
    """Stripe: confirmCardPayment(clientSecret, {payment_method: 'pm_...'}) pays with a
    saved card, running 3-D Secure when the card asks for it."""
    customer = client.v1.customers.create(params={"email": "buyer@example.com"})
    method = save_card(client, customer.id, CARD_3DS_ALWAYS)
    intent = create_payment_intent(client, customer=customer.id)

    open_page(page, site, intent.client_secret, mode="saved_card", payment_method=method.id)
    page.get_by_role("button", name="Pay with saved card").click()
    three_d_secure(page, "Complete")
    result = wait_result(page)

    assert "error" not in result, result
    assert result["paymentIntent"]["status"] == "succeeded"
    assert result["paymentIntent"]["payment_method"] == method.id
    finish(page, "confirm-card-payment-saved-card")


@pytest.mark.browser
def test_payment_element_without_postal_code_field(
    page: Any, site: HostSite, client: stripe.StripeClient
) -> None:
    """Stripe: elements.create('payment', {fields: {billingDetails: {address:
    {postalCode: 'never'}}}}) hides the field; the page passes the postal code in
    confirmParams.payment_method_data.billing_details."""
    intent = create_payment_intent(client)
    open_page(page, site, intent.client_secret, postal="never")
    frame = card_frame(page)
    expect(frame.get_by_label("Postal code")).to_be_hidden()
    frame.get_by_label("Card number").fill(CARD_SUCCESS)
    frame.get_by_label("Expiration date").fill("12 / 34")
    frame.get_by_label("Security code").fill("123")
    page.wait_for_function("() => window.changeEvents.at(-1).complete === true")
    submit(page)
    result = wait_result(page)

    assert result["paymentIntent"]["status"] == "succeeded", result
    method = client.v1.payment_methods.retrieve(result["paymentIntent"]["payment_method"])
    assert method.billing_details.address is not None
    assert method.billing_details.address.postal_code == "75001"
    finish(page, "no-postal-field")


@pytest.mark.browser
def test_change_event_complete_flips_when_all_fields_are_filled(
    page: Any, site: HostSite, client: stripe.StripeClient
) -> None:
    """Stripe: the Payment Element's change event reports
    {elementType: 'payment', complete, empty, value: {type: 'card'}}; complete becomes
    true only once every field is valid, and false again when one is not."""
    intent = create_payment_intent(client)
    open_page(page, site, intent.client_secret)
    frame = card_frame(page)
    frame.get_by_label("Card number").fill(CARD_SUCCESS)
    frame.get_by_label("Expiration date").fill("12 / 34")
    frame.get_by_label("Security code").fill("123")
    events = page.evaluate("() => window.changeEvents")
    assert events, "no change event"
    assert events[-1] == {
        "elementType": "payment",
        "complete": False,
        "empty": False,
        "collapsed": False,
        "value": {"type": "card"},
    }
    assert page.locator("#complete").inner_text() == "false"

    frame.get_by_label("Postal code").fill("10001")
    page.wait_for_function("() => window.changeEvents.at(-1).complete === true")
    assert page.locator("#complete").inner_text() == "true"

    frame.get_by_label("Security code").fill("1")
    page.wait_for_function("() => window.changeEvents.at(-1).complete === false")
    frame.get_by_label("Security code").fill("123")
    page.wait_for_function("() => window.changeEvents.at(-1).complete === true")
    finish(page, "change-event-complete")


@pytest.mark.browser
def test_card_data_never_reaches_host_page_or_site(
    page: Any, site: HostSite, client: stripe.StripeClient
) -> None:
    """Stripe: card fields live in Stripe's cross-origin iframe, so the host page's
    forms and DOM never hold card data and the site never receives it."""
    intent = create_payment_intent(client)
    open_page(page, site, intent.client_secret)
    fill_card(page, CARD_SUCCESS)

    host = page.evaluate(
        """() => ({
          forms: Array.from(document.forms).map((form) =>
            Array.from(new FormData(form).entries()).map(([k, v]) => k + '=' + v)),
          fieldNames: Array.from(document.forms).flatMap((form) =>
            Array.from(form.elements).map((el) => el.name)),
          html: document.documentElement.outerHTML,
          frameReadable: (() => {
            try { return !!document.querySelector('iframe').contentDocument; }
            catch (e) { return false; }
          })(),
        })"""
    )
    assert host["forms"] == [["order=42", "email=buyer@example.com"]]
    assert not {"number", "expiry", "cvc", "postal"} & set(host["fieldNames"])
    assert "4242" not in host["html"]
    assert host["frameReadable"] is False  # the frame is on the emulator's origin

    submit(page)
    result = wait_result(page)
    assert result["paymentIntent"]["status"] == "succeeded"
    assert not [r for r in site.requests if "4242" in r or r.startswith("POST")]
    finish(page, "card-data-not-in-host-page")


@pytest.mark.browser
def test_incomplete_card_gives_validation_error(
    page: Any, site: HostSite, client: stripe.StripeClient
) -> None:
    """Stripe: confirming with incomplete fields resolves {error: {type:
    'validation_error', code: 'incomplete_number'...}} without calling the API, and the
    element shows the message under the field."""
    intent = create_payment_intent(client)
    open_page(page, site, intent.client_secret)
    card_frame(page).get_by_label("Card number").fill("4242 4242")
    submit(page)
    result = wait_result(page)

    assert result["error"]["type"] == "validation_error"
    assert result["error"]["code"] == "incomplete_number"
    frame = card_frame(page)
    assert frame.get_by_text("Your card number is incomplete.").is_visible()
    assert frame.get_by_label("Card number").get_attribute("aria-invalid") == "true"
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"
    finish(page, "incomplete-card-validation-error")


@pytest.mark.browser
def test_redirect_always_goes_to_return_url(
    page: Any, site: HostSite, client: stripe.StripeClient
) -> None:
    """Stripe: with the default redirect: 'always', confirmPayment navigates to
    return_url?payment_intent=..&payment_intent_client_secret=..&redirect_status=."""
    intent = create_payment_intent(client)
    open_page(page, site, intent.client_secret, redirect="always")
    fill_card(page, CARD_SUCCESS)
    with page.expect_navigation(url=f"{site.url}/complete?**"):
        page.get_by_role("button", name="Pay", exact=True).click()

    query = parse_qs(urlparse(page.url).query)
    assert query == {
        "payment_intent": [intent.id],
        "payment_intent_client_secret": [intent.client_secret],
        "redirect_status": ["succeeded"],
    }
    finish(page, "redirect-always")


@pytest.mark.browser
@pytest.mark.allow_csp_violations
def test_harness_records_csp_violations_and_errors(page: Any, site: HostSite) -> None:
    """The page fixture itself: CSP violations and uncaught errors are recorded."""
    page.goto(f"{site.url}/csp-probe.html")
    page.wait_for_function("() => document.readyState === 'complete'")
    page.wait_for_timeout(100)
    assert page.title() == "CSP probe"  # the inline script was blocked
    assert any(v["effectiveDirective"] == "script-src-elem" for v in page.csp_violations)
    assert any("boom from the probe page" in e for e in page.console_errors)
    screenshot(page, "emulator-stripejs-harness-csp-probe")


# --------------------------------------------------------------------------------------
# The route itself (no browser needed)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/js.stripe.com/v3/", "application/javascript"),
        ("/js.stripe.com/v3/elements-inner.html", "text/html"),
        ("/js.stripe.com/v3/elements-inner.js", "application/javascript"),
        ("/js.stripe.com/v3/elements-inner.css", "text/css"),
    ],
)
def test_emulator_serves_its_own_stripe_js(emulator: Any, path: str, content_type: str) -> None:
    response = requests.get(emulator.url + path, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(content_type)
    assert "GPL-3.0-or-later" in response.text
    if path.endswith("/v3/"):
        assert "confirmPayment" in response.text  # ours, not localstripe's fake


def test_register_replaces_an_existing_route() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from stripe_emulator import js

    async def old(request: web.Request) -> web.Response:
        return web.Response(text="old")

    async def check() -> tuple[int, str, str]:
        app = web.Application()
        app.router.add_get("/js.stripe.com/v3/", old)
        js.register(app)
        js.register(app)  # idempotent
        async with TestClient(TestServer(app)) as http:
            response = await http.get("/js.stripe.com/v3/")
            return response.status, response.content_type, await response.text()

    # In a thread of its own: the session's Playwright (sync API) owns this thread's loop.
    outcome: list[tuple[int, str, str]] = []
    worker = threading.Thread(target=lambda: outcome.append(asyncio.run(check())))
    worker.start()
    worker.join(timeout=30)
    status, content_type, text = outcome[0]
    assert (status, content_type) == (200, "application/javascript")
    assert "confirmPayment" in text and text != "old"
