"""Domain exceptions and the one place that maps every error to a JSON or HTML answer."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from payments_site.extensions import db, limiter

log = logging.getLogger(__name__)


class DomainError(Exception):
    """An error with a stable machine code and a message safe to show to the client."""

    status = 400
    code = "invalid_request"
    message = "The request is invalid."

    def __init__(self, message: str | None = None, *, param: str | None = None,
                 **extra: Any) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.param = param
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.param:
            error["param"] = self.param
        error.update({k: v for k, v in self.extra.items() if k != "payload"})
        body: dict[str, Any] = {"error": error}
        if "payload" in self.extra:
            body.update(self.extra["payload"])
        return body


class InvalidRequest(DomainError):
    pass


class Unauthenticated(DomainError):
    status, code, message = 401, "unauthenticated", "Authentication required."


class Forbidden(DomainError):
    status, code, message = 403, "forbidden", "You are not allowed to do that."


class NotFound(DomainError):
    status, code, message = 404, "not_found", "Not found."


class CardDeclined(DomainError):
    status, code, message = 402, "card_declined", "Your card was declined."


class RefundTooLarge(DomainError):
    code, message = "amount_too_large", "The amount is more than what remains refundable."


class PaymentDisputed(DomainError):
    code = "charge_disputed"
    message = ("This payment is disputed: refunds are not possible while the dispute is open. "
               "Respond to the dispute in the Stripe Dashboard instead.")


class IdempotencyInProgress(DomainError):
    status, code = 409, "idempotency_in_progress"
    message = "A request with this Idempotency-Key is still in progress."


class IdempotencyKeyReused(DomainError):
    status, code = 422, "idempotency_key_reused"
    message = "This Idempotency-Key was used with a different request body."


class ProviderError(DomainError):
    status, code = 502, "payment_provider_error"
    message = "The payment provider could not complete the request. Please try again."


class ProviderUnavailable(DomainError):
    status, code = 503, "payment_provider_unavailable"
    message = "The payment provider is unavailable. Please try again in a moment."


_HTTP_CODES = {400: "invalid_request", 401: "unauthenticated", 403: "forbidden",
               404: "not_found", 405: "method_not_allowed", 413: "invalid_request",
               415: "invalid_request", 429: "rate_limited"}


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > \
        request.accept_mimetypes["text/html"]


def error_response(status: int, code: str, message: str, **extra: Any) -> Response:
    """Answer an error as API.md's JSON shape or as an HTML page, by what the client wants."""
    if wants_json():
        body = DomainError(message, **extra)
        body.code = code
        response = jsonify(body.to_dict())
    else:
        response = Response(render_template("errors/error.html", status=status,
                                            message=message), mimetype="text/html")
    response.status_code = status
    return response


def _retry_after() -> int:
    """Seconds until the breached limit's window resets (60 if it cannot be read).

    Only a refused request asks the limiter for its window: X-RateLimit-* headers on every
    answer would cost two more Redis round trips per request (config, RATELIMIT_HEADERS_ENABLED).
    """
    try:
        limit = limiter.current_limit
        if limit is not None:
            return max(1, min(int(limit.reset_at - time.time()), 86_400))
    except Exception:  # noqa: BLE001 - Redis gone: the limiter fails open, this answer too
        log.warning("could not read the rate limit's window for Retry-After", exc_info=True)
    return 60


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def handle_domain_error(error: DomainError) -> Response:
        if wants_json():
            response = jsonify(error.to_dict())
            response.status_code = error.status
            return response
        return error_response(error.status, error.code, error.message)

    @app.errorhandler(CSRFError)
    def handle_csrf_error(error: CSRFError) -> Response:
        return error_response(403, "forbidden",
                              "The form expired or the CSRF token is missing. Please retry.")

    @app.errorhandler(429)
    def handle_rate_limited(error: HTTPException) -> Response:
        response = error_response(429, "rate_limited",
                                  "Too many requests. Please try again later.")
        response.headers["Retry-After"] = str(_retry_after())
        return response

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException) -> Response:
        status = error.code or 500
        message = (error.description or "") if status < 500 else "Something went wrong."
        if status == 404:
            message = "Not found."
        return error_response(status, _HTTP_CODES.get(status, "error"), message)

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> Response:
        # Roll back so the next request on this connection does not inherit a broken session.
        db.session.rollback()
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error",
                              "Something went wrong on our side. Nothing was charged twice; "
                              "please try again.")
