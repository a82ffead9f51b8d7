"""The `api` blueprint (every JSON route, under /api), its one admin check and its
Idempotency-Key handling.

Schemas: pydantic v2 models through flask-openapi3. Each route declares its request parts
(`body`, `query`, `header`, `path`) and its answers once, and the same models validate the
request and write /api/openapi.json. Chosen over APIFlask (whose pydantic support flattens
errors to a dict of messages, losing the `items[0].quantity` path API.md's `param` needs),
spectree (which skips DELETE bodies and reads malformed JSON as `{}`) and flask-smorest
(marshmallow, and its own HTTP error handler beside ours): flask-openapi3 hands the raw
pydantic ValidationError to one callback (`parsing.refuse`), so every refusal keeps API.md's
error shape; its `validate_request()` lets the checks run below login, CSRF, rate limits and
Idempotency-Key claims (`parsing.validated`); it supports Flask 3 and is actively released.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, jsonify
from flask_login import current_user
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.info import Info
from flask_openapi3.models.server import Server

from payments_site.blueprints import parsing
from payments_site.blueprints.api.schemas import Error
from payments_site.errors import DomainError, Forbidden, Unauthenticated
from payments_site.services.idempotency import run_idempotent

bp = APIBlueprint("api", __name__, url_prefix="/api")

# The OpenAPI app's settings (payments_site.create_app and the document use the same).
OPENAPI_OPTIONS: dict[str, Any] = {
    "info": Info(title="payments_site API", version="1.0.0",
                 description="JSON routes for the pages' scripts and API clients. Session "
                             "cookie + X-CSRFToken, or Authorization: Bearer. Every answer "
                             "carries an X-Request-ID header (quote it when reporting a "
                             "problem). Outside this API, operators scrape Prometheus "
                             "metrics at GET /metrics with Authorization: Bearer "
                             "$METRICS_TOKEN (text format; 404 when METRICS_TOKEN is unset, "
                             "401 with a wrong token)."),
    "servers": [Server(url="/")],
    "security_schemes": {"bearer": {"type": "http", "scheme": "bearer"},
                         "session": {"type": "apiKey", "in": "cookie", "name": "session"}},
    "openapi_extensions": {"security": [{"bearer": []}, {"session": []}]},
    # A refused request is API.md's 400 (never pydantic's 422), raised by one function.
    "validation_error_status": 400,
    "validation_error_model": Error,
    "validation_error_callback": parsing.refuse,
    "doc_ui": False,
}
# For the routes anyone may call (no login, no token): `openapi_extensions=PUBLIC`.
PUBLIC: dict[str, Any] = {"security": []}

View = TypeVar("View", bound=Callable[..., Any])


def admin_required(view: View) -> View:
    """The API's one admin check: 401 anonymous, 403 for customers."""
    @functools.wraps(view)
    def check(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            raise Unauthenticated()
        if not current_user.is_admin:
            raise Forbidden()
        return view(*args, **kwargs)
    return check  # type: ignore[return-value]


def idempotent(scope: str) -> Callable[[View], View]:
    """API.md's Idempotency-Key for a view answering (body, status): the same caller, key and
    body replay the stored answer, errors below 500 included (the view's own 400s too).

    `scope` names the route, so a key cannot replay another route's answer.
    """
    def decorate(view: View) -> View:
        @functools.wraps(view)
        def run(*args: Any, **kwargs: Any) -> tuple[Response, int]:
            key = parsing.header(parsing.IdempotencyKeyHeader).key
            body = parsing.json_object()

            def answer() -> tuple[dict[str, Any], int]:
                try:
                    return typing.cast(tuple[dict[str, Any], int], view(*args, **kwargs))
                except DomainError as error:
                    return error.to_dict(), error.status

            response, status = run_idempotent(scope, current_user.id, key, body, answer)
            return jsonify(response), status
        return run  # type: ignore[return-value]
    return decorate
