"""The emulator's Stripe.js in the "collect payment details before creating an Intent" flow.

https://docs.stripe.com/payments/accept-a-payment-deferred: the page mounts the Payment
Element with ``stripe.elements({mode: 'payment', amount, currency})``, calls
``elements.submit()`` when the customer presses Pay, then the server creates the
PaymentIntent and the page confirms it with ``stripe.confirmPayment({elements,
clientSecret})``. A hand-written host page (its own origin, a strict CSP) drives the
emulator's Stripe.js in real Chromium; the tests play the server's part with the official
SDK. Every browser test leaves a screenshot under ``test-results/screenshots/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
import stripe

from payments_site.devtools.stack import StripeEmulator
from tests.browser import HostSite, screenshot
from tests.emulator.helpers import PUBLISHABLE_KEY, pk_post

CARD_SUCCESS = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_3DS = "4000002500003155"
FRAME = 'iframe[name^="__privateStripeFrame"]'
SUBMIT_FIRST = (
    "elements.submit() must be called before stripe.confirmPayment(). Call elements.submit() "
    "as soon as your customer presses pay, prior to any asynchronous work. Integration guide: "
    "https://stripe.com/docs/payments/accept-a-payment-deferred")

PAGE_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta http-equiv="Content-Security-Policy" content="default-src 'self'; \
script-src 'self' {emulator}; style-src 'self'; connect-src 'self' {emulator}; \
frame-src {emulator}; img-src 'self' data:; form-action 'self'; base-uri 'none'">
  <title>Deferred checkout</title>
</head>
<body data-publishable-key="{pk}">
  <main>
    <h1>Checkout</h1>
    <form id="payment-form"><div id="payment-element"></div></form>
  </main>
  <script src="{emulator}/js.stripe.com/v3/"></script>
  <script src="/deferred.js"></script>
</body>
</html>
"""

# Mounts the Payment Element with the Elements options given in ?options=<json>, and exposes
# window.run(action, args): what a checkout page's script does, as JSON-able results. A
# thrown IntegrationError (a programming mistake, in Stripe.js's terms) becomes {thrown}.
PAGE_JS = """
(() => {
  const params = new URLSearchParams(location.search);
  const stripe = Stripe(document.body.dataset.publishableKey);
  const returnUrl = location.origin + '/complete';
  window.stripe = stripe;
  window.tryElements = (options) => {
    try { stripe.elements(options); return null; }
    catch (e) { return {name: e.name, message: e.message}; }
  };
  const elements = stripe.elements(JSON.parse(params.get('options')));
  const paymentElement = elements.create('payment');
  paymentElement.on('ready', () => { document.body.dataset.ready = '1'; });
  paymentElement.mount('#payment-element');
  window.elements = elements;

  const actions = {
    submit: () => elements.submit(),
    update: (options) => elements.update(options).then(() => ({updated: true})),
    confirm: ({clientSecret}) => stripe.confirmPayment(
      {elements, clientSecret, confirmParams: {return_url: returnUrl}, redirect: 'if_required'}),
    confirmSetup: ({clientSecret}) => stripe.confirmSetup(
      {elements, clientSecret, confirmParams: {return_url: returnUrl}, redirect: 'if_required'}),
    // What the page does when the customer presses Pay.
    pay: async ({clientSecret}) => {
      const submitted = await elements.submit();
      if (submitted.error) { return {submitError: submitted.error}; }
      return actions.confirm({clientSecret});
    },
    createPaymentMethod: () => stripe.createPaymentMethod(
      {elements, params: {billing_details: {name: 'Ada Lovelace'}}}),
  };
  window.run = async (action, args) => {
    try {
      return JSON.parse(JSON.stringify(await actions[action](args || {})));
    } catch (e) {
      return {thrown: {name: e.name, message: e.message}};
    }
  };
  // Starts an action without waiting (the test may have to answer 3-D Secure first).
  window.start = (action, args) => {
    window.__result = undefined;
    window.run(action, args).then((result) => { window.__result = result; });
  };
})();
"""


@pytest.fixture
def site(emulator: StripeEmulator) -> Iterator[HostSite]:
    host = HostSite({
        "/deferred.html": lambda: (
            PAGE_HTML.format(emulator=emulator.url, pk=PUBLISHABLE_KEY), "text/html"),
        "/deferred.js": (PAGE_JS, "application/javascript"),
        "/complete": ("<!DOCTYPE html><title>Complete</title><h1>Done</h1>", "text/html"),
    })
    yield host
    host.stop()


@pytest.fixture
def sc(emulator: StripeEmulator) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_deferred", base_addresses={"api": emulator.url},
                               max_network_retries=0)


class Network:
    """Every request the page and its frames make, as "METHOD url" strings."""

    def __init__(self, page: Any) -> None:
        self.requests: list[str] = []
        page.on("request", lambda request: self.requests.append(
            f"{request.method} {request.url}"))

    def api_calls(self) -> list[str]:
        return [r for r in self.requests if "/v1/" in r]


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

PAYMENT_OPTIONS: dict[str, Any] = {"mode": "payment", "amount": 2599, "currency": "eur"}


def open_page(page: Any, site: HostSite, **options: Any) -> Network:
    network = Network(page)
    query = urlencode({"options": json.dumps({**PAYMENT_OPTIONS, **options})})
    page.goto(f"{site.url}/deferred.html?{query}")
    page.wait_for_selector('body[data-ready="1"]')
    return network


def frame(page: Any) -> Any:
    return page.frame_locator(FRAME)


def fill_card(page: Any, number: str) -> None:
    card = frame(page)
    card.get_by_label("Card number").fill(number)
    card.get_by_label("Expiration date").fill("12 / 34")
    card.get_by_label("Security code").fill("123")
    card.get_by_label("Postal code").fill("10001")


def settle(page: Any) -> None:
    """A round trip through the card frame: whatever it posted before (the notice that the
    customer typed) has reached the page when this returns."""
    page.evaluate("() => window.elements.update({})")


def run(page: Any, action: str, **args: Any) -> dict[str, Any]:
    return page.evaluate(  # type: ignore[no-any-return]
        "([action, args]) => window.run(action, args)", [action, args])


def start(page: Any, action: str, **args: Any) -> None:
    page.evaluate("([action, args]) => window.start(action, args)", [action, args])


def result(page: Any) -> dict[str, Any]:
    page.wait_for_function("() => window.__result !== undefined")
    return page.evaluate("() => window.__result")  # type: ignore[no-any-return]


def three_d_secure(page: Any, button: str) -> None:
    dialog = page.get_by_role("dialog", name="3D Secure authentication")
    dialog.wait_for()
    dialog.get_by_role("button", name=button, exact=True).click()
    dialog.wait_for(state="detached")


def create_intent(sc: stripe.StripeClient, amount: int = 2599, **extra: Any) -> Any:
    params: dict[str, Any] = {"amount": amount, "currency": "eur",
                              "allowed_payment_method_types": ["card"], **extra}
    return sc.v1.payment_intents.create(params=params)  # type: ignore[arg-type]


def finish(page: Any, name: str) -> None:
    """Screenshot; the page ran without CSP violations or uncaught errors (Chromium logs a
    402 or 400 answer from the API as a failed resource load: that is expected)."""
    screenshot(page, f"emulator-stripejs-deferred-{name}")
    assert page.csp_violations == []
    assert [e for e in page.console_errors if "Failed to load resource" not in e] == []


# --------------------------------------------------------------------------------------
# stripe.elements({mode}) and elements.update()
# --------------------------------------------------------------------------------------


@pytest.mark.browser
def test_payment_mode_mounts_the_card_fields_and_shows_the_amount(
        page: Any, site: HostSite) -> None:
    """Stripe: elements({mode: 'payment', amount, currency}) needs no intent; the Payment
    Element mounts at once and nothing is sent to the API until the customer pays."""
    network = open_page(page, site)
    card = frame(page)
    assert card.get_by_label("Card number").is_visible()
    assert card.locator("#summary").inner_text() == "Total: €25.99"
    assert not card.locator("#terms").is_visible()  # nothing is saved for later
    assert network.api_calls() == []
    finish(page, "payment-mode-mounts")


@pytest.mark.browser
def test_update_changes_the_shown_amount_without_a_network_call(
        page: Any, site: HostSite) -> None:
    """Stripe: elements.update({amount, currency, setupFutureUsage}) changes what the
    element shows; it resolves once applied and calls no API."""
    network = open_page(page, site)
    before = list(network.requests)

    assert run(page, "update", amount=4999) == {"updated": True}
    assert frame(page).locator("#summary").inner_text() == "Total: €49.99"
    assert run(page, "update", currency="jpy", amount=1200) == {"updated": True}
    assert frame(page).locator("#summary").inner_text() == "Total: ¥1,200"
    assert run(page, "update", setupFutureUsage="off_session") == {"updated": True}
    assert frame(page).locator("#terms").inner_text().startswith(
        "By providing your card information, you allow this business to charge your card")

    assert network.requests == before
    finish(page, "update-amount")


ELEMENTS_ERRORS = [
    ({"mode": "payment", "currency": "eur"},
     "Missing value for elements(): amount should be an integer"),
    ({"mode": "payment", "amount": 25.99, "currency": "eur"},
     "Invalid value for elements(): amount should be a positive integer"),
    ({"mode": "payment", "amount": "2599", "currency": "eur"},
     "Invalid value for elements(): amount should be a positive integer"),
    ({"mode": "payment", "amount": 0, "currency": "eur"},
     "Invalid value for elements(): amount should be a positive integer"),
    ({"mode": "payment", "amount": 2599},
     "Missing value for elements(): currency should be a three-letter ISO currency code"),
    ({"mode": "payment", "amount": 2599, "currency": "EUR"},
     "Invalid value for elements(): currency should be a three-letter ISO currency code "
     'in lowercase, like "usd". You specified: EUR.'),
    ({"mode": "purchase", "amount": 2599, "currency": "eur"},
     "Invalid value for elements(): mode should be one of the following strings: payment, "
     "setup, subscription. You specified: purchase."),
    ({"mode": "payment", "amount": 2599, "currency": "eur", "clientSecret": "pi_1_secret_2"},
     "Invalid value for elements(): pass either `clientSecret`"),
    ({"mode": "payment", "amount": 2599, "currency": "eur", "setupFutureUsage": "always"},
     "Invalid value for elements(): setupFutureUsage should be one of the following strings: "
     "off_session, on_session. You specified: always."),
    ({"mode": "payment", "amount": 2599, "currency": "eur",
      "paymentMethodTypes": ["sepa_debit"]},
     "Invalid value for elements(): the Stripe emulator's Payment Element only collects "
     'cards, so paymentMethodTypes must include "card".'),
    ({"mode": "payment", "amount": 2599, "currency": "eur", "paymentMethodCreation": "auto"},
     "Invalid value for elements(): paymentMethodCreation should be \"manual\""),
    ({"clientSecret": "not-a-secret"},
     "Invalid value for elements(): clientSecret should be a client secret of the form "
     "${id}_secret_${secret}. You specified: not-a-secret."),
]


@pytest.mark.browser
def test_elements_and_update_reject_bad_options_with_integration_errors(
        page: Any, site: HostSite) -> None:
    """Stripe.js throws an IntegrationError for bad Elements options (a programming mistake),
    both from stripe.elements() and from elements.update(); a valid mode needs no amount
    only in 'setup' mode."""
    open_page(page, site)
    for options, message in ELEMENTS_ERRORS:
        thrown = page.evaluate("(options) => window.tryElements(options)", options)
        assert thrown is not None, options
        assert thrown["name"] == "IntegrationError", options
        assert thrown["message"].startswith(message), (options, thrown["message"])
    assert page.evaluate("() => window.tryElements({mode: 'setup', currency: 'eur'})") is None

    bad_update = run(page, "update", amount=-5)
    assert bad_update["thrown"]["name"] == "IntegrationError"
    assert bad_update["thrown"]["message"].startswith(
        "Invalid value for elements.update(): amount should be a positive integer")
    # The failed update changed nothing.
    assert frame(page).locator("#summary").inner_text() == "Total: €25.99"

    with_secret = page.evaluate("""() => {
      const elements = window.stripe.elements({clientSecret: 'pi_123_secret_456'});
      return elements.update({amount: 100}).then(() => null, (e) => e.message);
    }""")
    assert with_secret.startswith("Invalid value for elements.update(): amount can only be "
                                  "updated on Elements created with `mode`")
    finish(page, "bad-options")


# --------------------------------------------------------------------------------------
# elements.submit()
# --------------------------------------------------------------------------------------


@pytest.mark.browser
def test_submit_with_an_empty_card_gives_incomplete_number_without_network(
        page: Any, site: HostSite) -> None:
    """Stripe: elements.submit() validates the fields in the frame and resolves {error}, a
    validation_error, without calling the API; the element shows the message."""
    network = open_page(page, site)
    before = list(network.requests)

    submitted = run(page, "submit")

    assert submitted == {"error": {
        "type": "validation_error", "code": "incomplete_number",
        "message": "Your card number is incomplete.", "param": "number"}}
    card = frame(page)
    assert card.get_by_text("Your card number is incomplete.").is_visible()
    assert card.get_by_label("Card number").get_attribute("aria-invalid") == "true"
    assert network.requests == before  # no request at all, to the API or anywhere
    finish(page, "submit-empty-card")


@pytest.mark.browser
def test_submit_with_a_complete_card_gives_no_error_without_network(
        page: Any, site: HostSite) -> None:
    """Stripe: with complete fields elements.submit() resolves without an error (with the
    selected payment method type) and still calls no API."""
    network = open_page(page, site)
    fill_card(page, CARD_SUCCESS)
    before = list(network.requests)

    assert run(page, "submit") == {"selectedPaymentMethod": "card"}
    assert network.requests == before
    finish(page, "submit-complete-card")


# --------------------------------------------------------------------------------------
# stripe.confirmPayment({elements, clientSecret})
# --------------------------------------------------------------------------------------


@pytest.mark.browser
def test_confirm_without_submit_rejects_with_stripes_integration_error(
        page: Any, site: HostSite, sc: stripe.StripeClient) -> None:
    """Stripe.js: confirmPayment with Elements created with mode rejects with an
    IntegrationError unless elements.submit() succeeded first, and again once the customer
    changes the card after it; without the new intent's clientSecret it rejects too.
    Nothing reaches the API in any of these cases."""
    intent = create_intent(sc)
    network = open_page(page, site)
    fill_card(page, CARD_SUCCESS)

    assert run(page, "confirm", clientSecret=intent.client_secret) == {
        "thrown": {"name": "IntegrationError", "message": SUBMIT_FIRST}}
    assert run(page, "confirm") == {"thrown": {
        "name": "IntegrationError",
        "message": "You must pass in a clientSecret when calling stripe.confirmPayment()."}}

    # A failed submit does not count...
    frame(page).get_by_label("Card number").fill("4242 4242")
    assert run(page, "submit")["error"]["code"] == "incomplete_number"
    assert run(page, "confirm", clientSecret=intent.client_secret)["thrown"]["message"] == (
        SUBMIT_FIRST)
    # ...and neither does a successful one once the customer has typed again.
    frame(page).get_by_label("Card number").fill(CARD_SUCCESS)
    assert run(page, "submit") == {"selectedPaymentMethod": "card"}
    frame(page).get_by_label("Card number").fill(CARD_DECLINED)
    settle(page)
    assert run(page, "confirm", clientSecret=intent.client_secret)["thrown"]["message"] == (
        SUBMIT_FIRST)

    assert network.api_calls() == []
    assert sc.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"
    finish(page, "confirm-without-submit")


@pytest.mark.browser
def test_deferred_payment_with_4242_succeeds(
        page: Any, site: HostSite, sc: stripe.StripeClient) -> None:
    """Stripe: submit, then the server creates the PaymentIntent, then confirmPayment({elements,
    clientSecret, redirect: 'if_required'}) resolves {paymentIntent} succeeded, paid with the
    card typed in the frame."""
    network = open_page(page, site)
    fill_card(page, CARD_SUCCESS)
    intent = create_intent(sc)

    paid = run(page, "pay", clientSecret=intent.client_secret)

    assert "error" not in paid and "thrown" not in paid, paid
    assert paid["paymentIntent"]["id"] == intent.id
    assert paid["paymentIntent"]["status"] == "succeeded"
    server_side = sc.v1.payment_intents.retrieve(intent.id)
    assert (server_side.status, server_side.amount_received) == ("succeeded", 2599)
    method = sc.v1.payment_methods.retrieve(str(server_side.payment_method))
    assert method.card is not None and method.card.last4 == "4242"
    # The card went from the frame to the API, never to the site.
    assert not [r for r in site.requests if "4242" in r or r.startswith("POST")]
    assert any(r.startswith("POST") and r.endswith(f"/v1/payment_intents/{intent.id}/confirm")
               for r in network.requests)
    finish(page, "4242-succeeds")


@pytest.mark.browser
@pytest.mark.parametrize("outcome", ["Complete", "Fail"])
def test_deferred_payment_with_3ds_card(
        page: Any, site: HostSite, sc: stripe.StripeClient, outcome: str) -> None:
    """Stripe: 4000 0025 0000 3155 asks for 3-D Secure; "Complete" makes the payment succeed,
    "Fail" resolves {error} payment_intent_authentication_failure with error.payment_intent
    back in requires_payment_method."""
    open_page(page, site)
    fill_card(page, CARD_3DS)
    intent = create_intent(sc)

    start(page, "pay", clientSecret=intent.client_secret)
    three_d_secure(page, outcome)
    paid = result(page)

    if outcome == "Complete":
        assert paid["paymentIntent"]["status"] == "succeeded", paid
        assert sc.v1.payment_intents.retrieve(intent.id).status == "succeeded"
    else:
        assert paid["error"]["code"] == "payment_intent_authentication_failure", paid
        assert paid["error"]["payment_intent"]["id"] == intent.id
        assert paid["error"]["payment_intent"]["status"] == "requires_payment_method"
        assert sc.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"
    finish(page, f"3ds-{outcome.lower()}")


@pytest.mark.browser
def test_declined_card_then_4242_on_the_same_payment_intent(
        page: Any, site: HostSite, sc: stripe.StripeClient) -> None:
    """Stripe: 4000 0000 0000 0002 is declined ({error} card_declined with error.payment_intent
    in requires_payment_method); the customer corrects the card, the page submits again and
    confirms the same PaymentIntent, which succeeds."""
    open_page(page, site)
    fill_card(page, CARD_DECLINED)
    intent = create_intent(sc)

    declined = run(page, "pay", clientSecret=intent.client_secret)
    assert declined["error"]["type"] == "card_error", declined
    assert declined["error"]["code"] == "card_declined"
    assert declined["error"]["payment_intent"]["id"] == intent.id
    assert declined["error"]["payment_intent"]["status"] == "requires_payment_method"
    screenshot(page, "emulator-stripejs-deferred-declined")

    frame(page).get_by_label("Card number").fill(CARD_SUCCESS)
    paid = run(page, "pay", clientSecret=intent.client_secret)

    assert paid["paymentIntent"]["id"] == intent.id, paid
    assert paid["paymentIntent"]["status"] == "succeeded"
    server_side = sc.v1.payment_intents.retrieve(intent.id)
    assert server_side.status == "succeeded"
    method = sc.v1.payment_methods.retrieve(str(server_side.payment_method))
    assert method.card is not None and method.card.last4 == "4242"
    finish(page, "declined-then-4242")


@pytest.mark.browser
def test_setup_future_usage_must_match_between_intent_and_elements(
        page: Any, site: HostSite, sc: stripe.StripeClient) -> None:
    """Stripe refuses to confirm a PaymentIntent whose setup_future_usage differs from the
    Payment Element's setupFutureUsage (the element told the customer whether the card is
    saved): {error} invalid_request_error, the intent unchanged. After
    elements.update({setupFutureUsage}) and a new submit, the same intent succeeds."""
    open_page(page, site)
    fill_card(page, CARD_SUCCESS)
    customer = sc.v1.customers.create(params={"email": "buyer@example.com"})
    intent = create_intent(sc, customer=customer.id, setup_future_usage="off_session")

    refused = run(page, "pay", clientSecret=intent.client_secret)

    error = refused["error"]
    assert error["type"] == "invalid_request_error", refused
    assert error["message"] == ("The provided setup_future_usage (off_session) does not match "
                                "the expected setup_future_usage (null).")
    assert error["payment_intent"]["id"] == intent.id
    assert sc.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"

    assert run(page, "update", setupFutureUsage="off_session") == {"updated": True}
    paid = run(page, "pay", clientSecret=intent.client_secret)
    assert paid["paymentIntent"]["status"] == "succeeded", paid
    saved = sc.v1.customers.payment_methods.list(customer.id)
    assert [m.id for m in saved.data] == [paid["paymentIntent"]["payment_method"]]
    finish(page, "setup-future-usage-mismatch")


@pytest.mark.browser
def test_amount_is_not_compared_with_the_intent(
        page: Any, site: HostSite, sc: stripe.StripeClient) -> None:
    """Stripe.js does not send the Elements amount when confirming (it is only shown), so an
    intent for another amount is charged its own amount: the server's amount is the truth."""
    open_page(page, site)  # shows 25.99
    fill_card(page, CARD_SUCCESS)
    intent = create_intent(sc, amount=3100)

    paid = run(page, "pay", clientSecret=intent.client_secret)

    assert paid["paymentIntent"]["status"] == "succeeded", paid
    assert sc.v1.payment_intents.retrieve(intent.id).amount_received == 3100
    finish(page, "amount-not-compared")


# --------------------------------------------------------------------------------------
# stripe.createPaymentMethod({elements}) and confirmSetup
# --------------------------------------------------------------------------------------


@pytest.mark.browser
def test_create_payment_method_from_deferred_elements(
        page: Any, site: HostSite, sc: stripe.StripeClient) -> None:
    """Stripe: with paymentMethodCreation: 'manual', createPaymentMethod({elements, params})
    creates a PaymentMethod from the frame once elements.submit() succeeded (before that it
    rejects with an IntegrationError); the server can then confirm with it."""
    network = open_page(page, site, paymentMethodCreation="manual")
    fill_card(page, CARD_SUCCESS)

    early = run(page, "createPaymentMethod")
    assert early["thrown"]["message"].startswith(
        "elements.submit() must be called before createPaymentMethod().")
    assert network.api_calls() == []

    assert run(page, "submit") == {"selectedPaymentMethod": "card"}
    created = run(page, "createPaymentMethod")
    method = created["paymentMethod"]
    assert method["id"].startswith("pm_")
    assert method["card"]["last4"] == "4242"
    assert method["billing_details"]["name"] == "Ada Lovelace"
    assert method["billing_details"]["address"]["postal_code"] == "10001"

    intent = create_intent(sc, payment_method=method["id"], confirm=True)
    assert intent.status == "succeeded"
    finish(page, "create-payment-method")


@pytest.mark.browser
def test_create_payment_method_needs_manual_payment_method_creation(
        page: Any, site: HostSite) -> None:
    """Stripe: Elements created with mode only hand out a PaymentMethod when created with
    paymentMethodCreation: 'manual'."""
    network = open_page(page, site)
    fill_card(page, CARD_SUCCESS)
    assert run(page, "submit") == {"selectedPaymentMethod": "card"}

    refused = run(page, "createPaymentMethod")

    assert refused["thrown"]["name"] == "IntegrationError"
    assert "paymentMethodCreation: 'manual'" in refused["thrown"]["message"]
    assert network.api_calls() == []
    finish(page, "create-payment-method-not-manual")


@pytest.mark.browser
def test_deferred_setup_saves_the_card(
        page: Any, site: HostSite, sc: stripe.StripeClient) -> None:
    """Stripe: elements({mode: 'setup'}) shows the saving terms; after submit the server
    creates a SetupIntent and confirmSetup({elements, clientSecret}) saves the card on the
    customer. confirmPayment with these Elements is refused."""
    open_page(page, site, mode="setup", amount=None, currency="eur")
    card = frame(page)
    assert card.locator("#terms").is_visible()
    assert not card.locator("#summary").is_visible()
    fill_card(page, CARD_SUCCESS)
    customer = sc.v1.customers.create(params={"email": "buyer@example.com"})
    setup = sc.v1.setup_intents.create(
        params={"customer": customer.id, "allowed_payment_method_types": ["card"]})

    assert run(page, "submit") == {"selectedPaymentMethod": "card"}
    wrong = run(page, "confirm", clientSecret=setup.client_secret)
    assert wrong["thrown"]["message"].startswith(
        "stripe.confirmPayment(): the Elements group was created with mode: 'setup'")
    saved = run(page, "confirmSetup", clientSecret=setup.client_secret)

    assert saved["setupIntent"]["status"] == "succeeded", saved
    listed = sc.v1.customers.payment_methods.list(customer.id)
    assert [m.id for m in listed.data] == [saved["setupIntent"]["payment_method"]]
    finish(page, "setup-mode")


# --------------------------------------------------------------------------------------
# The API side of client_context (no browser)
# --------------------------------------------------------------------------------------


def test_confirm_checks_client_context_setup_future_usage(
        emulator: StripeEmulator, sc: stripe.StripeClient) -> None:
    """What Stripe.js sends: client_context with the Elements options. A setup_future_usage
    that differs from the intent's is refused (400) and leaves the intent as it was; an
    unknown client_context field is refused like any unknown parameter."""
    intent = create_intent(sc)
    method = sc.v1.payment_methods.create(params={
        "type": "card",
        "card": {"number": CARD_SUCCESS, "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
    path = f"/v1/payment_intents/{intent.id}/confirm"
    base = {"client_secret": str(intent.client_secret), "payment_method": method.id,
            "client_context[mode]": "payment", "client_context[currency]": "eur"}

    refused = pk_post(emulator.url, path, {**base,
                                           "client_context[setup_future_usage]": "on_session"})
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == (
        "The provided setup_future_usage (null) does not match the expected "
        "setup_future_usage (on_session).")
    unknown = pk_post(emulator.url, path, {**base, "client_context[amount]": "2599"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["param"] == "client_context[amount]"
    assert sc.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"

    accepted = pk_post(emulator.url, path, base)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "succeeded"
    # Without client_context (an intent-first page) nothing is compared.
    other = create_intent(sc, setup_future_usage="off_session")
    other_method = sc.v1.payment_methods.create(params={
        "type": "card",
        "card": {"number": CARD_SUCCESS, "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
    plain = requests.post(f"{emulator.url}/v1/payment_intents/{other.id}/confirm",
                          data={"key": PUBLISHABLE_KEY, "client_secret": other.client_secret,
                                "payment_method": other_method.id}, timeout=10)
    assert plain.status_code == 200, plain.text
