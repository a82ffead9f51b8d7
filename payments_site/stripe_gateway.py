"""The only module that imports `stripe`: typed calls, bounded retries, idempotency, error mapping.

Every call goes through `_call`, which retries what Stripe documents as retryable
(connection errors, 409s, 5xx, and 429 with a longer backoff) with the SAME idempotency key,
so a retry can never create a second object. Stripe's own `Stripe-Should-Retry` header wins
over that rule, both ways: `false` comes with a 500 Stripe saved under the key, which any
retry with that key can only replay (`SavedFailure`). A 409 `idempotency_key_in_use` means
the first request with the key is still running (`KeyInFlight`): retry later with the same
key, never with a new one. Stripe errors become the domain exceptions of
`payments_site.errors`.
https://docs.stripe.com/error-low-level#idempotency, https://docs.stripe.com/rate-limits,
https://docs.stripe.com/api/idempotent_requests

What Stripe answers is handed back as small frozen dataclasses (`Intent`, `SetupIntent`,
`PaymentMethod`, `Card`, `Outcome`, `Refund`, `Dispute`, `Charge`, `Customer`) holding the
fields the app uses, read once here: a reference Stripe may expand (a charge, a card) is
always its id as a plain string, and an expanded object, where asked for, is a dataclass of
its own. No other module sees a Stripe object.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, ParamSpec, TypeVar

import stripe
from flask import current_app
from stripe.params import (
    DisputeListParams,
    PaymentIntentCreateParams,
    RefundCreateParams,
    RefundListParams,
)

from payments_site import metrics
from payments_site.errors import CardDeclined, DomainError, ProviderError, ProviderUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")

CancellationReason = Literal["abandoned", "duplicate", "fraudulent", "requested_by_customer"]


class GatewayInvalidRequest(DomainError):
    """Stripe refused the request as invalid (unknown id, wrong state, bad parameter)."""

    status, code = 400, "invalid_request"

    def __init__(self, message: str, *, stripe_code: str | None = None,
                 param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.stripe_code = stripe_code


class ResourceMissing(GatewayInvalidRequest):
    status, code = 404, "not_found"


class KeyInFlight(ProviderUnavailable):
    """409 `idempotency_key_in_use`: the first request with this key is still running at
    Stripe. Its outcome is not known yet; the same key, later, gets it."""

    message = "This payment step is still being processed. Please try again in a moment."


class SavedFailure(ProviderError):
    """A 5xx that Stripe saved under the idempotency key (`Stripe-Should-Retry: false`):
    every request with that key replays it for 24 hours, so retrying with it cannot help."""


class SignatureInvalid(Exception):
    """A webhook payload whose Stripe-Signature matches none of the configured secrets."""


def _client() -> stripe.StripeClient:
    client = current_app.extensions.get("stripe_client")
    if client is None:
        client = stripe.StripeClient(
            current_app.config["STRIPE_SECRET_KEY"],
            base_addresses={"api": current_app.config["STRIPE_API_BASE"]},
            # Retries are ours (below), so every attempt is logged and bounded the same way.
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=current_app.config["STRIPE_TIMEOUT"]),
        )
        current_app.extensions["stripe_client"] = client
    return client


def _backoff(attempt: int, *, rate_limited: bool) -> float:
    base = float(current_app.config.get("STRIPE_RETRY_BASE_DELAY", 0.5))
    if rate_limited:
        base *= 4  # Stripe asks clients to back off harder on 429.
    delay: float = min(base * (2 ** attempt), 8.0)
    return delay / 2 + random.uniform(0, delay / 2)


def _should_retry_header(error: stripe.StripeError) -> bool | None:
    """Stripe's `Stripe-Should-Retry` answer: True, False, or None when it sent none."""
    hint = error.headers.get("stripe-should-retry") if error.headers else None
    return {"true": True, "false": False}.get(str(hint).strip().lower()) if hint else None


def _stripe_code(error: stripe.StripeError) -> str | None:
    """The error's `code` (the SDK fills `error.code` only for some error classes)."""
    return error.code or getattr(error.error, "code", None)


def _is_retryable(error: stripe.StripeError) -> bool:
    # Stripe's own hint wins when present, both ways.
    hint = _should_retry_header(error)
    if hint is not None:
        return hint
    if isinstance(error, stripe.APIConnectionError | stripe.RateLimitError):
        return True
    status = error.http_status or 0
    if status == 409 and not isinstance(error, stripe.IdempotencyError):
        return True  # a lock timeout, or the key's first request still running
    return isinstance(error, stripe.APIError) or status >= 500


def _retry_after(error: stripe.StripeError) -> float:
    """Seconds a `Retry-After` header asks for (0 when absent or unreadable), at most 8."""
    raw = error.headers.get("retry-after") if error.headers else None
    try:
        seconds = float(raw) if raw is not None else 0.0
    except ValueError:
        return 0.0
    return min(max(seconds, 0.0), 8.0)


def _call(operation: str, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run one Stripe call with bounded retries; map the final error to a domain exception.

    Typed with the SDK method's own signature, so mypy checks every call's parameters. Each
    attempt is timed and counted (payments_site.metrics) and logged with Stripe's own
    `Request-Id`; the log line carries our request id too (payments_site.tracing), so a
    request's Stripe calls can be found in Stripe's Dashboard logs."""
    attempts = int(current_app.config["STRIPE_MAX_RETRIES"]) + 1
    for attempt in range(attempts):
        try:
            return _attempt(operation, func, *args, **kwargs)
        except stripe.CardError as error:
            raise _card_declined(error) from error
        except stripe.StripeError as error:
            if _is_retryable(error) and attempt + 1 < attempts:
                delay = max(_backoff(attempt,
                                     rate_limited=isinstance(error, stripe.RateLimitError)),
                            _retry_after(error))
                log.warning("stripe %s failed (%s, http %s); retry %d in %.2fs", operation,
                            error.__class__.__name__, error.http_status, attempt + 1, delay)
                metrics.stripe_retry(operation)
                time.sleep(delay)
                continue
            raise _map_error(operation, error) from error
    raise AssertionError("unreachable")  # pragma: no cover


def _attempt(operation: str, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """One request to Stripe: timed, counted, and logged with Stripe's Request-Id."""
    started = time.perf_counter()
    try:
        result = _timed(func, *args, **kwargs)
    except stripe.StripeError as error:
        elapsed = time.perf_counter() - started
        metrics.stripe_request(operation, elapsed)
        metrics.stripe_error(operation, error.__class__.__name__)
        log.info("stripe %s answered http %s in %.0f ms (stripe_request_id=%s)", operation,
                 error.http_status, elapsed * 1000, error.request_id or "-")
        raise
    elapsed = time.perf_counter() - started
    metrics.stripe_request(operation, elapsed)
    log.info("stripe %s ok in %.0f ms (stripe_request_id=%s)", operation, elapsed * 1000,
             _stripe_request_id(result) or "-")
    return result


def _stripe_request_id(result: object) -> str | None:
    """Stripe's `Request-Id` of the answer an SDK object was made from."""
    response = getattr(result, "last_response", None)
    request_id = getattr(response, "request_id", None)
    return request_id if isinstance(request_id, str) else None


@dataclass
class StripeTimings:
    """The time one request spent waiting for Stripe (the Server-Timing header's part)."""

    seconds: float = 0.0
    calls: int = 0


# The current request's recorder, when one is timing (SERVER_TIMING); None otherwise.
_timings: ContextVar[StripeTimings | None] = ContextVar("stripe_timings", default=None)


def start_timing() -> StripeTimings:
    """Add the Stripe requests made from now on, in this context, to a fresh recorder."""
    timings = StripeTimings()
    _timings.set(timings)
    return timings


def stop_timing() -> StripeTimings | None:
    """The recorder `start_timing` started (None if none), no longer added to."""
    timings = _timings.get()
    _timings.set(None)
    return timings


def _timed(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """One Stripe request; its wait is added to the current recorder, if any."""
    started = time.perf_counter()
    try:
        return func(*args, **kwargs)
    finally:
        timings = _timings.get()
        if timings is not None:
            timings.seconds += time.perf_counter() - started
            timings.calls += 1


def _card_declined(error: stripe.CardError) -> CardDeclined:
    err = error.error
    code = getattr(err, "code", None) or error.code or "card_declined"
    decline_code = getattr(err, "decline_code", None) or code
    return CardDeclined(friendly_decline_message(code, decline_code, error.user_message),
                        decline_code=decline_code, stripe_code=code)


def _map_error(operation: str, error: stripe.StripeError) -> DomainError:
    log.warning("stripe %s failed: %s http=%s code=%s", operation, error.__class__.__name__,
                error.http_status, _stripe_code(error))
    if isinstance(error, stripe.InvalidRequestError):
        stripe_code = error.code
        if stripe_code == "resource_missing" or error.http_status == 404:
            return ResourceMissing("No such object.", stripe_code=stripe_code,
                                   param=error.param)
        return GatewayInvalidRequest(error.user_message or "The payment provider refused the "
                                     "request.", stripe_code=stripe_code, param=error.param)
    if isinstance(error, stripe.APIConnectionError | stripe.RateLimitError):
        return ProviderUnavailable()
    if error.http_status == 409 and _stripe_code(error) == "idempotency_key_in_use":
        return KeyInFlight()
    if (error.http_status or 0) >= 500 and _should_retry_header(error) is False:
        return SavedFailure()
    if isinstance(error, stripe.APIError) or (error.http_status or 0) >= 500:
        return ProviderUnavailable() if (error.http_status or 0) in (502, 503, 504) \
            else ProviderError()
    return ProviderError()


DECLINE_MESSAGES = {
    "insufficient_funds": "Your card has insufficient funds. Try another card.",
    "expired_card": "Your card has expired. Check the expiry date or use another card.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "incorrect_number": "Your card number is incorrect.",
    "processing_error": "An error occurred while processing your card. Try again.",
    "authentication_required": "Your bank needs you to confirm this payment.",
    "payment_intent_authentication_failure":
        "We could not authenticate your payment. Try again or use another card.",
    "setup_intent_authentication_failure":
        "We could not authenticate your card. Try again or use another card.",
    # Radar blocked it, or the issuer suspects fraud: never say so to the customer.
    "fraudulent": "Your card was declined. Try another card, or contact your bank.",
    "highest_risk_level": "Your card was declined. Try another card, or contact your bank.",
    "card_velocity_exceeded": "Your card was declined because it has been used too many "
                              "times recently. Wait a while or use another card.",
    "do_not_honor": "Your card was declined. Contact your bank or use another card.",
    "lost_card": "Your card was declined.",
    "stolen_card": "Your card was declined.",
    "generic_decline": "Your card was declined.",
    "card_declined": "Your card was declined.",
}


def friendly_decline_message(code: str | None, decline_code: str | None,
                             stripe_message: str | None = None) -> str:
    """Stripe's decline message for the customer (Stripe's text is written for end users)."""
    for key in (decline_code, code):
        if key and key in DECLINE_MESSAGES:
            return DECLINE_MESSAGES[key]
    return stripe_message or "Your card was declined."


# --- What Stripe answers, as plain data ------------------------------------------------------

@dataclass(frozen=True)
class Card:
    """A card's display fields (never its number)."""

    brand: str | None
    last4: str | None
    exp_month: int
    exp_year: int
    fingerprint: str | None


@dataclass(frozen=True)
class PaymentMethod:
    id: str
    type: str | None
    customer_id: str | None  # None once detached
    card: Card | None


@dataclass(frozen=True)
class PaymentError:
    """Why Stripe declined or could not authenticate (an intent's last error)."""

    code: str | None
    decline_code: str | None
    message: str | None
    card: Card | None  # the card that failed, when Stripe says


@dataclass(frozen=True)
class Outcome:
    """Radar's and the network's verdict on a charge (`charge.outcome`)."""

    type: str | None  # authorized, manual_review, issuer_declined, blocked, invalid
    risk_level: str | None  # normal, elevated, highest, not_assessed, unknown
    risk_score: int | None  # 0-99


@dataclass(frozen=True)
class Intent:
    """A PaymentIntent."""

    id: str
    status: str
    client_secret: str | None
    our_payment_id: str | None  # our payment's public id, from the intent's metadata
    payment_method_id: str | None
    payment_method: PaymentMethod | None  # when expanded
    latest_charge_id: str | None
    charge_card: Card | None  # the latest charge's card, when the charge is expanded
    last_payment_error: PaymentError | None
    # Which of our creates made it (`metadata.create_attempt`, 0 when absent).
    our_create_attempt: int = 0
    outcome: Outcome | None = None  # the latest charge's, when the charge is expanded


@dataclass(frozen=True)
class SetupIntent:
    id: str
    status: str
    client_secret: str | None
    customer_id: str | None
    payment_method_id: str | None
    payment_method: PaymentMethod | None  # when expanded
    last_setup_error: PaymentError | None


@dataclass(frozen=True)
class Refund:
    id: str
    status: str | None
    amount: int | None
    currency: str | None
    reason: str | None
    failure_reason: str | None
    payment_intent_id: str | None
    charge_id: str | None
    our_refund_id: str | None  # our refund's public id, from the refund's metadata


@dataclass(frozen=True)
class Dispute:
    id: str
    status: str | None
    reason: str | None
    amount: int | None
    currency: str | None
    payment_intent_id: str | None
    charge_id: str | None
    evidence_due_by: datetime | None


@dataclass(frozen=True)
class Charge:
    id: str
    payment_intent_id: str | None


@dataclass(frozen=True)
class Customer:
    id: str


def _plain(obj: stripe.StripeObject) -> dict[str, Any]:
    return obj.to_dict()


def _id(value: object) -> str | None:
    """A Stripe reference as its id, whether Stripe expanded it (an object) or not (an id)."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _required_id(data: Mapping[str, Any]) -> str:
    found = _id(data)
    if found is None:
        raise ProviderError()  # Stripe always names its objects: this answer is not one
    return found


def _text(value: object) -> str | None:
    return str(value) if value is not None and value != "" else None


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _mapping(value: object) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) and value else None


def _metadata(data: Mapping[str, Any], key: str) -> str | None:
    metadata = _mapping(data.get("metadata"))
    return _text(metadata.get(key)) if metadata else None


def _card(value: object) -> Card | None:
    card = _mapping(value)
    if card is None:
        return None
    return Card(brand=_text(card.get("brand")), last4=_text(card.get("last4")),
                exp_month=int(card.get("exp_month") or 0),
                exp_year=int(card.get("exp_year") or 0),
                fingerprint=_text(card.get("fingerprint")))


def _payment_method(value: object) -> PaymentMethod | None:
    """An expanded PaymentMethod (None for a bare id)."""
    data = _mapping(value)
    if data is None:
        return None
    return PaymentMethod(id=_required_id(data), type=_text(data.get("type")),
                         customer_id=_id(data.get("customer")), card=_card(data.get("card")))


def _payment_error(value: object) -> PaymentError | None:
    error = _mapping(value)
    if error is None:
        return None
    failed_method = _mapping(error.get("payment_method"))
    return PaymentError(code=_text(error.get("code")),
                        decline_code=_text(error.get("decline_code")),
                        message=_text(error.get("message")),
                        card=_card(failed_method.get("card")) if failed_method else None)


def _outcome(value: object) -> Outcome | None:
    outcome = _mapping(value)
    if outcome is None:
        return None
    return Outcome(type=_text(outcome.get("type")), risk_level=_text(outcome.get("risk_level")),
                   risk_score=_integer(outcome.get("risk_score")))


def _create_attempt(data: Mapping[str, Any]) -> int:
    text = _metadata(data, "create_attempt")
    return int(text) if text is not None and text.isdigit() else 0


def _intent(data: Mapping[str, Any]) -> Intent:
    charge = _mapping(data.get("latest_charge"))
    details = _mapping(charge.get("payment_method_details")) if charge else None
    return Intent(id=_required_id(data), status=str(data.get("status") or ""),
                  client_secret=_text(data.get("client_secret")),
                  our_payment_id=_metadata(data, "payment_id"),
                  payment_method_id=_id(data.get("payment_method")),
                  payment_method=_payment_method(data.get("payment_method")),
                  latest_charge_id=_id(data.get("latest_charge")),
                  charge_card=_card(details.get("card")) if details else None,
                  last_payment_error=_payment_error(data.get("last_payment_error")),
                  our_create_attempt=_create_attempt(data),
                  outcome=_outcome(charge.get("outcome")) if charge else None)


def _setup_intent(data: Mapping[str, Any]) -> SetupIntent:
    return SetupIntent(id=_required_id(data), status=str(data.get("status") or ""),
                       client_secret=_text(data.get("client_secret")),
                       customer_id=_id(data.get("customer")),
                       payment_method_id=_id(data.get("payment_method")),
                       payment_method=_payment_method(data.get("payment_method")),
                       last_setup_error=_payment_error(data.get("last_setup_error")))


def _refund(data: Mapping[str, Any]) -> Refund:
    return Refund(id=_required_id(data), status=_text(data.get("status")),
                  amount=_integer(data.get("amount")), currency=_text(data.get("currency")),
                  reason=_text(data.get("reason")),
                  failure_reason=_text(data.get("failure_reason")),
                  payment_intent_id=_id(data.get("payment_intent")),
                  charge_id=_id(data.get("charge")),
                  our_refund_id=_metadata(data, "refund_id"))


def _dispute(data: Mapping[str, Any]) -> Dispute:
    evidence = _mapping(data.get("evidence_details"))
    due_by = evidence.get("due_by") if evidence else None
    return Dispute(id=_required_id(data), status=_text(data.get("status")),
                   reason=_text(data.get("reason")), amount=_integer(data.get("amount")),
                   currency=_text(data.get("currency")),
                   payment_intent_id=_id(data.get("payment_intent")),
                   charge_id=_id(data.get("charge")),
                   evidence_due_by=datetime.fromtimestamp(int(due_by), UTC) if due_by else None)


# --- Customers -----------------------------------------------------------------------------

def create_customer(*, email: str, name: str, user_id: int, idempotency_key: str) -> Customer:
    customer = _call("customers.create", _client().v1.customers.create,
                     {"email": email, "name": name, "metadata": {"user_id": str(user_id)}},
                     {"idempotency_key": idempotency_key})
    return Customer(id=_required_id(_plain(customer)))


def set_default_payment_method(customer_id: str, payment_method_id: str) -> None:
    """The card Stripe uses for the customer's invoices (and shows first in the Dashboard)."""
    _call("customers.update", _client().v1.customers.update, customer_id,
          {"invoice_settings": {"default_payment_method": payment_method_id}})


# --- PaymentIntents ------------------------------------------------------------------------

# Read with the intent: the charge and the card, so the card's brand and last4 (and the
# charge's id) need no second call.
_EXPAND_INTENT = ["latest_charge", "payment_method"]


def create_payment_intent(*, amount: int, currency: str, customer_id: str, description: str,
                          metadata: dict[str, str], save_card: bool,
                          idempotency_key: str) -> Intent:
    """Create a PaymentIntent for a customer (confirmed later, by Stripe.js or the server)."""
    params: PaymentIntentCreateParams = {
        "amount": amount, "currency": currency, "customer": customer_id,
        # No redirect-based methods, so a server-side confirm with a saved card needs no
        # return_url (3-D Secure still runs through Stripe.js).
        "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        "description": description, "metadata": metadata,
    }
    if save_card:
        params["setup_future_usage"] = "off_session"
    return _intent(_plain(_call("payment_intents.create", _client().v1.payment_intents.create,
                                params, {"idempotency_key": idempotency_key})))


def confirm_payment_intent(intent_id: str, *, payment_method_id: str,
                           idempotency_key: str) -> Intent:
    """Confirm with a saved card; the answer carries the charge and the card."""
    return _intent(_plain(_call(
        "payment_intents.confirm", _client().v1.payment_intents.confirm, intent_id,
        {"payment_method": payment_method_id, "expand": _EXPAND_INTENT},
        {"idempotency_key": idempotency_key})))


def retrieve_payment_intent(intent_id: str) -> Intent:
    return _intent(_plain(_call("payment_intents.retrieve",
                                _client().v1.payment_intents.retrieve, intent_id,
                                {"expand": _EXPAND_INTENT})))


def set_intent_saves_card(intent_id: str, save: bool) -> Intent:
    """Whether an unconfirmed intent keeps the card for later (`setup_future_usage`), as the
    customer ticks or unticks "save this card".

    No idempotency key: an update sets absolute values, so repeating it is harmless, and a
    cached earlier response must not mask a later change of mind.
    """
    return _intent(_plain(_call("payment_intents.update", _client().v1.payment_intents.update,
                                intent_id,
                                {"setup_future_usage": "off_session" if save else ""})))


def payment_intents_of_customer(customer_id: str) -> list[Intent]:
    """The customer's PaymentIntents (up to 100, newest first), charges not expanded."""
    page = _call("payment_intents.list", _client().v1.payment_intents.list,
                 {"customer": customer_id, "limit": 100})
    return [_intent(_plain(intent)) for intent in page.data]


def cancel_payment_intent(intent_id: str, *, reason: CancellationReason,
                          idempotency_key: str) -> Intent:
    """Cancel an intent nobody can pay any more; Stripe refuses once it succeeded."""
    return _intent(_plain(_call("payment_intents.cancel", _client().v1.payment_intents.cancel,
                                intent_id, {"cancellation_reason": reason},
                                {"idempotency_key": idempotency_key})))


# --- SetupIntents and PaymentMethods -------------------------------------------------------

def create_setup_intent(*, customer_id: str, user_id: int, idempotency_key: str) -> SetupIntent:
    """A SetupIntent that saves a card for off-session payments."""
    intent = _call("setup_intents.create", _client().v1.setup_intents.create, {
        "customer": customer_id, "usage": "off_session",
        # Redirect-based methods are excluded: cards (with in-page 3-D Secure) are what we save.
        "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        "metadata": {"user_id": str(user_id)}}, {"idempotency_key": idempotency_key})
    return _setup_intent(_plain(intent))


def retrieve_setup_intent(setup_intent_id: str) -> SetupIntent:
    return _setup_intent(_plain(_call("setup_intents.retrieve",
                                      _client().v1.setup_intents.retrieve, setup_intent_id,
                                      {"expand": ["payment_method"]})))


def retrieve_payment_method(payment_method_id: str) -> PaymentMethod:
    method = _call("payment_methods.retrieve", _client().v1.payment_methods.retrieve,
                   payment_method_id)
    return _known_payment_method(_plain(method))


def attach_payment_method(payment_method_id: str, *, customer_id: str,
                          idempotency_key: str) -> PaymentMethod:
    method = _call("payment_methods.attach", _client().v1.payment_methods.attach,
                   payment_method_id, {"customer": customer_id},
                   {"idempotency_key": idempotency_key})
    return _known_payment_method(_plain(method))


def detach_payment_method(payment_method_id: str) -> None:
    _call("payment_methods.detach", _client().v1.payment_methods.detach, payment_method_id)


def _known_payment_method(data: Mapping[str, Any]) -> PaymentMethod:
    method = _payment_method(data)
    if method is None:
        raise ProviderError()
    return method


# --- Refunds -------------------------------------------------------------------------------

def refund_payment_intent(payment_intent_id: str, amount: int, reason: str | None, *,
                          metadata: dict[str, str], idempotency_key: str) -> Refund:
    """Refund `amount` of a PaymentIntent's charge; `reason`: Stripe's reason or None."""
    params: RefundCreateParams = {"payment_intent": payment_intent_id, "amount": amount,
                                  "metadata": metadata}
    if reason == "duplicate" or reason == "fraudulent" or reason == "requested_by_customer":
        params["reason"] = reason
    elif reason is not None:
        raise ValueError(f"unknown refund reason {reason!r}")
    return _refund(_plain(_call("refunds.create", _client().v1.refunds.create, params,
                                {"idempotency_key": idempotency_key})))


def retrieve_refund(refund_id: str) -> Refund:
    return _refund(_plain(_call("refunds.retrieve", _client().v1.refunds.retrieve, refund_id)))


def refunds_of_charge(charge_id: str) -> list[Refund]:
    """The charge's refunds (up to 100, newest first)."""
    return _refunds({"charge": charge_id, "limit": 100})


def refunds_of_payment_intent(payment_intent_id: str) -> list[Refund]:
    """The refunds of a PaymentIntent's charge (up to 100, newest first)."""
    return _refunds({"payment_intent": payment_intent_id, "limit": 100})


def _refunds(params: RefundListParams) -> list[Refund]:
    page = _call("refunds.list", _client().v1.refunds.list, params)
    return [_refund(_plain(refund)) for refund in page.data]


def list_refunds_created_since(created_gte: int) -> list[Refund]:
    """Every refund created at or after `created_gte` (Unix time), newest first, all pages."""
    params: RefundListParams = {"created": {"gte": created_gte}, "limit": 100}
    return [_refund(_plain(refund))
            for refund in _all_pages("refunds.list", _client().v1.refunds.list, params)]


# --- Disputes --------------------------------------------------------------------------------

def retrieve_dispute(dispute_id: str) -> Dispute:
    return _dispute(_plain(_call("disputes.retrieve", _client().v1.disputes.retrieve,
                                 dispute_id)))


def list_disputes_created_since(created_gte: int) -> list[Dispute]:
    """Every dispute created at or after `created_gte` (Unix time), newest first, all pages."""
    params: DisputeListParams = {"created": {"gte": created_gte}, "limit": 100}
    return [_dispute(_plain(dispute))
            for dispute in _all_pages("disputes.list", _client().v1.disputes.list, params)]


_Listed = TypeVar("_Listed", bound=stripe.StripeObject)
_ListParams = TypeVar("_ListParams", RefundListParams, DisputeListParams)


def _all_pages(operation: str, list_page: Callable[[_ListParams], stripe.ListObject[_Listed]],
               params: _ListParams) -> list[_Listed]:
    """Every object of a Stripe list, page after page (each page one call with retries)."""
    found: list[_Listed] = []
    while True:
        page = _call(operation, list_page, params)
        found.extend(page.data)
        if not page.has_more or not page.data:
            return found
        params = {**params, "starting_after": page.data[-1]["id"]}


# --- Webhooks ------------------------------------------------------------------------------

def verify_webhook(payload: bytes, signature_header: str | None) -> dict[str, Any]:
    """The event (a plain dict) if its signature matches ANY configured secret (rotation)
    within tolerance.

    Stripe's verifier only rejects old timestamps; one far in the future is refused here too.
    The body is decoded and parsed once, after the signature is checked; no StripeObject is
    built (the inbox stores the raw payload and a job re-reads the object from Stripe).
    """
    if not signature_header:
        raise SignatureInvalid("missing Stripe-Signature header")
    tolerance = int(current_app.config["STRIPE_WEBHOOK_TOLERANCE"])
    _reject_future_timestamp(signature_header, tolerance)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SignatureInvalid("payload is not UTF-8") from error
    for secret in current_app.config["STRIPE_WEBHOOK_SECRET"]:
        try:
            stripe.WebhookSignature.verify_header(text, signature_header, secret,
                                                  tolerance=tolerance)
        except stripe.SignatureVerificationError:
            continue
        try:
            event = json.loads(text)
        except ValueError as error:
            raise SignatureInvalid("payload is not valid JSON") from error
        if not isinstance(event, dict):
            raise SignatureInvalid("payload is not a JSON object")
        return event
    raise SignatureInvalid("no configured secret matches the signature")


def _reject_future_timestamp(signature_header: str, tolerance: int) -> None:
    for part in signature_header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError as error:
                raise SignatureInvalid("malformed timestamp") from error
            if timestamp > time.time() + tolerance:
                raise SignatureInvalid("timestamp is in the future")
            return
    raise SignatureInvalid("no timestamp in signature")


def event_object_id(event: Mapping[str, Any]) -> str:
    """The id of the object a webhook event is about (handlers re-read it from Stripe)."""
    return _required_id(_event_object(event))


def event_charge(event: Mapping[str, Any]) -> Charge:
    """The charge a `charge.*` event carries."""
    obj = _event_object(event)
    return Charge(id=_required_id(obj), payment_intent_id=_id(obj.get("payment_intent")))


def _event_object(event: Mapping[str, Any]) -> Mapping[str, Any]:
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(obj, Mapping) or _id(obj) is None:
        raise ValueError("event has no data.object with an id")
    return obj
