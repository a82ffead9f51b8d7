"""The only module that imports `stripe`: typed calls, bounded retries, idempotency, error mapping.

Every call goes through `_call`, which retries what Stripe documents as retryable
(connection errors, 409 lock timeouts, 5xx, and 429 with a longer backoff) with the SAME
idempotency key, so a retry can never create a second object. Stripe errors become the
domain exceptions of `payments_site.errors`.
https://docs.stripe.com/error-low-level#idempotency, https://docs.stripe.com/rate-limits
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import stripe
from flask import current_app
from stripe.params import (
    CustomerCreateParams,
    CustomerUpdateParams,
    DisputeListParams,
    PaymentIntentCancelParams,
    PaymentIntentConfirmParams,
    PaymentIntentListParams,
    PaymentIntentRetrieveParams,
    PaymentIntentUpdateParams,
    PaymentMethodAttachParams,
    RefundCreateParams,
    RefundListParams,
    SetupIntentCreateParams,
    SetupIntentRetrieveParams,
)
from stripe.params import (
    # Re-exported: services build their create requests with it and take it from here, so
    # this module stays the only one that imports `stripe`.
    PaymentIntentCreateParams as PaymentIntentCreateParams,
)

from payments_site.errors import CardDeclined, DomainError, ProviderError, ProviderUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")

PaymentIntent = stripe.PaymentIntent
SetupIntent = stripe.SetupIntent
PaymentMethod = stripe.PaymentMethod
Refund = stripe.Refund
Charge = stripe.Charge
Customer = stripe.Customer
Event = stripe.Event
StripeObject = stripe.StripeObject


class GatewayInvalidRequest(DomainError):
    """Stripe refused the request as invalid (unknown id, wrong state, bad parameter)."""

    status, code = 400, "invalid_request"

    def __init__(self, message: str, *, stripe_code: str | None = None,
                 param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.stripe_code = stripe_code


class ResourceMissing(GatewayInvalidRequest):
    status, code = 404, "not_found"


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


def _is_retryable(error: stripe.StripeError) -> bool:
    if isinstance(error, stripe.APIConnectionError | stripe.RateLimitError):
        return True
    status = error.http_status or 0
    if status == 409 and not isinstance(error, stripe.IdempotencyError):
        return True
    if isinstance(error, stripe.APIError) or status >= 500:
        return True
    # Stripe's own hint wins when present.
    return bool(error.headers and error.headers.get("stripe-should-retry") == "true")


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

    Typed with the SDK method's own signature, so mypy checks every call's parameters."""
    attempts = int(current_app.config["STRIPE_MAX_RETRIES"]) + 1
    for attempt in range(attempts):
        try:
            return _timed(func, *args, **kwargs)
        except stripe.CardError as error:
            raise _card_declined(error) from error
        except stripe.StripeError as error:
            if _is_retryable(error) and attempt + 1 < attempts:
                delay = max(_backoff(attempt,
                                     rate_limited=isinstance(error, stripe.RateLimitError)),
                            _retry_after(error))
                log.warning("stripe %s failed (%s, http %s); retry %d in %.2fs", operation,
                            error.__class__.__name__, error.http_status, attempt + 1, delay)
                time.sleep(delay)
                continue
            raise _map_error(operation, error) from error
    raise AssertionError("unreachable")  # pragma: no cover


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
                error.http_status, error.code)
    if isinstance(error, stripe.InvalidRequestError):
        stripe_code = error.code
        if stripe_code == "resource_missing" or error.http_status == 404:
            return ResourceMissing("No such object.", stripe_code=stripe_code,
                                   param=error.param)
        return GatewayInvalidRequest(error.user_message or "The payment provider refused the "
                                     "request.", stripe_code=stripe_code, param=error.param)
    if isinstance(error, stripe.APIConnectionError | stripe.RateLimitError):
        return ProviderUnavailable()
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


# --- Customers -----------------------------------------------------------------------------

def create_customer(params: CustomerCreateParams, *, idempotency_key: str) -> stripe.Customer:
    return _call("customers.create", _client().v1.customers.create, params,
                 {"idempotency_key": idempotency_key})


def update_customer(customer_id: str, params: CustomerUpdateParams) -> stripe.Customer:
    return _call("customers.update", _client().v1.customers.update, customer_id, params)


# --- PaymentIntents ------------------------------------------------------------------------

def create_payment_intent(params: PaymentIntentCreateParams, *,
                          idempotency_key: str) -> stripe.PaymentIntent:
    """Create (and with `confirm`, confirm) a PaymentIntent; CardDeclined carries the intent."""
    return _call("payment_intents.create", _client().v1.payment_intents.create, params,
                 {"idempotency_key": idempotency_key})


def confirm_payment_intent(intent_id: str, params: PaymentIntentConfirmParams, *,
                           idempotency_key: str) -> stripe.PaymentIntent:
    return _call("payment_intents.confirm", _client().v1.payment_intents.confirm, intent_id,
                 params, {"idempotency_key": idempotency_key})


def retrieve_payment_intent(intent_id: str,
                            params: PaymentIntentRetrieveParams | None = None
                            ) -> stripe.PaymentIntent:
    return _call("payment_intents.retrieve", _client().v1.payment_intents.retrieve, intent_id,
                 params or {"expand": ["latest_charge", "payment_method"]})


def list_payment_intents(params: PaymentIntentListParams) -> list[stripe.PaymentIntent]:
    page = _call("payment_intents.list", _client().v1.payment_intents.list, params)
    return list(page.data)


def cancel_payment_intent(intent_id: str, params: PaymentIntentCancelParams, *,
                          idempotency_key: str) -> stripe.PaymentIntent:
    """Cancel an intent nobody can pay any more; Stripe refuses once it succeeded."""
    return _call("payment_intents.cancel", _client().v1.payment_intents.cancel, intent_id,
                 params, {"idempotency_key": idempotency_key})


# --- Checkout additions (payments service) ---------------------------------------------------

def update_payment_intent(intent_id: str,
                          params: PaymentIntentUpdateParams) -> stripe.PaymentIntent:
    """Change an unconfirmed intent (e.g. `setup_future_usage` when the customer ticks "save").

    No idempotency key: an update sets absolute values, so repeating it is harmless, and a
    cached earlier response must not mask a later change of mind.
    """
    return _call("payment_intents.update", _client().v1.payment_intents.update, intent_id,
                 params)


# --- SetupIntents and PaymentMethods -------------------------------------------------------

def create_setup_intent(params: SetupIntentCreateParams, *,
                        idempotency_key: str) -> stripe.SetupIntent:
    return _call("setup_intents.create", _client().v1.setup_intents.create, params,
                 {"idempotency_key": idempotency_key})


def retrieve_setup_intent(setup_intent_id: str,
                          params: SetupIntentRetrieveParams | None = None) -> stripe.SetupIntent:
    return _call("setup_intents.retrieve", _client().v1.setup_intents.retrieve,
                 setup_intent_id, params or {"expand": ["payment_method"]})


def retrieve_payment_method(payment_method_id: str) -> stripe.PaymentMethod:
    return _call("payment_methods.retrieve", _client().v1.payment_methods.retrieve,
                 payment_method_id)


def attach_payment_method(payment_method_id: str, params: PaymentMethodAttachParams, *,
                          idempotency_key: str) -> stripe.PaymentMethod:
    return _call("payment_methods.attach", _client().v1.payment_methods.attach,
                 payment_method_id, params, {"idempotency_key": idempotency_key})


def detach_payment_method(payment_method_id: str) -> stripe.PaymentMethod:
    return _call("payment_methods.detach", _client().v1.payment_methods.detach,
                 payment_method_id)


def list_customer_payment_methods(customer_id: str) -> list[stripe.PaymentMethod]:
    page = _call("customers.payment_methods.list",
                 _client().v1.customers.payment_methods.list, customer_id,
                 {"type": "card", "limit": 100})
    return list(page.data)


# --- Refunds and charges -------------------------------------------------------------------

def create_refund(params: RefundCreateParams, *, idempotency_key: str) -> stripe.Refund:
    return _call("refunds.create", _client().v1.refunds.create, params,
                 {"idempotency_key": idempotency_key})


def retrieve_refund(refund_id: str) -> stripe.Refund:
    return _call("refunds.retrieve", _client().v1.refunds.retrieve, refund_id)


def list_refunds(params: RefundListParams) -> list[stripe.Refund]:
    page = _call("refunds.list", _client().v1.refunds.list, params)
    return list(page.data)


def list_refunds_created_since(created_gte: int) -> list[stripe.Refund]:
    """Every refund created at or after `created_gte` (Unix time), newest first, all pages."""
    params: RefundListParams = {"created": {"gte": created_gte}, "limit": 100}
    return _all_pages("refunds.list", _client().v1.refunds.list, params)


def retrieve_charge(charge_id: str) -> stripe.Charge:
    return _call("charges.retrieve", _client().v1.charges.retrieve, charge_id)


# --- Disputes (webhook handlers) -------------------------------------------------------------

def retrieve_dispute(dispute_id: str) -> stripe.Dispute:
    return _call("disputes.retrieve", _client().v1.disputes.retrieve, dispute_id)


def list_disputes_created_since(created_gte: int) -> list[stripe.Dispute]:
    """Every dispute created at or after `created_gte` (Unix time), newest first, all pages."""
    params: DisputeListParams = {"created": {"gte": created_gte}, "limit": 100}
    return _all_pages("disputes.list", _client().v1.disputes.list, params)


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
        params = {**params, "starting_after": page.data[-1]["id"]}  # type: ignore[assignment]


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


def to_dict(obj: Any) -> dict[str, Any]:
    """A plain dict of a Stripe object (for storing or passing to a job)."""
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict()
    return dict(obj)


# --- Refunds of a payment (refunds engineer) -------------------------------------------------

def refund_payment_intent(payment_intent_id: str, amount: int, reason: str | None, *,
                          metadata: dict[str, str], idempotency_key: str) -> stripe.Refund:
    """Refund `amount` of a PaymentIntent's charge; `reason`: Stripe's reason or None."""
    params: RefundCreateParams = {"payment_intent": payment_intent_id, "amount": amount,
                                  "metadata": metadata}
    if reason == "duplicate" or reason == "fraudulent" or reason == "requested_by_customer":
        params["reason"] = reason
    elif reason is not None:
        raise ValueError(f"unknown refund reason {reason!r}")
    return create_refund(params, idempotency_key=idempotency_key)
