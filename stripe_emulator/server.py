# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (C) 2026 the payments_site authors; extends localstripe (C) 2017 Adrien Vergé.
#
# This program is free software: you can redistribute it and/or modify it under the terms of
# the GNU General Public License as published by the Free Software Foundation, either version 3
# of the License, or (at your option) any later version. This program is distributed in the hope
# that it will be useful, but WITHOUT ANY WARRANTY; without even the implied warranty of
# MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the LICENSE file in this folder.
"""The aiohttp application: Stripe's /v1 routes, control routes and the request middlewares."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import contract, faults, idempotency, js, persistence, webhooks
from . import localstripe_seam as seam
from . import resources as res
from .errors import StripeError
from .localstripe_seam import UserError

log = logging.getLogger("stripe_emulator")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Routes Stripe.js may call with a publishable key (intent routes also need the client_secret).
PUBLISHABLE_ROUTES = [(m, re.compile(p)) for m, p in (
    ("POST", r"^/v1/payment_methods$"),
    ("POST", r"^/v1/tokens$"),
    ("POST", r"^/v1/sources$"),
    ("GET", r"^/v1/(payment|setup)_intents/[^/]+$"),
    ("POST", r"^/v1/(payment|setup)_intents/[^/]+/(confirm|_authenticate)$"),
    ("POST", r"^/v1/setup_intents/[^/]+/cancel$"),
)]
CORS_HEADERS = "Content-Type, Accept, Authorization, Idempotency-Key, Stripe-Version"


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2) + "\n"


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps)


def error_response(exc: UserError) -> web.Response:
    """Render localstripe's and our errors with Stripe's codes (unknown param, 404…)."""
    body = exc.body
    err = body["error"]
    message = str(err.get("message", ""))
    if message.startswith("Unexpected ") and "code" not in err:
        name = message[len("Unexpected "):].split(",")[0].strip()
        err.update(message=f"Received unknown parameter: {name}", param=name,
                   code="parameter_unknown")
    elif exc.code == 404 and "code" not in err:
        err["code"] = "resource_missing"
    ctx = res.current_request.get()
    if ctx and ctx.get("id"):
        # Stripe links every error to its request in the Dashboard's logs.
        err.setdefault("request_log_url", f"https://dashboard.stripe.com/test/logs/{ctx['id']}"
                                          f"?t={res.now()}")
    return json_response(body, status=exc.code)


def drop_connection(request: web.Request) -> web.StreamResponse:
    """Close the socket without any response: the client sees a reset / empty reply."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise asyncio.CancelledError


# --------------------------------------------------------------------------- middlewares


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except UserError as exc:
        return error_response(exc)
    except web.HTTPNotFound:
        return json_response({"error": {
            "type": "invalid_request_error",
            "message": f"Unrecognized request URL ({request.method}: {request.path}). Please "
                       f"see https://docs.stripe.com or we can help at "
                       f"https://support.stripe.com/."}}, status=404)
    except web.HTTPMethodNotAllowed:
        return json_response({"error": {
            "type": "invalid_request_error",
            "message": f"Unrecognized request URL ({request.method}: {request.path})."}},
            status=405)
    except web.HTTPException:
        raise
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response({"error": {"type": "api_error",
                                        "message": "The Stripe emulator hit an internal error."}},
                             status=500)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = res.new_id("req_", 14)
    request["request_id"] = request_id
    token = res.current_request.set({"id": request_id,
                                     "idempotency_key": request.headers.get("Idempotency-Key")})
    try:
        response = await handler(request)
    finally:
        res.current_request.reset(token)
    response.headers.setdefault("Request-Id", request_id)
    response.headers["Stripe-Version"] = request.headers.get("Stripe-Version", res.API_VERSION)
    return response


def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/v1/")


async def _parse_params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = seam.unflatten_data(request.query) if request.query else {}
    if request.method in ("POST", "DELETE") and request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise StripeError(400, "Invalid JSON body.") from None
            if not isinstance(body, dict):
                raise StripeError(400, "The JSON body must be an object.")
        else:
            form = await request.post()
            body = seam.unflatten_data(form) if form else {}
        params.update(body)
    return params


def _api_key(request: web.Request, params: dict[str, Any]) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme == "Bearer":
        return value.strip() or None
    if scheme == "Basic":
        try:
            return base64.b64decode(value).decode().split(":")[0] or None
        except (binascii.Error, UnicodeDecodeError):
            return None
    key = params.get("key")
    return key if isinstance(key, str) and key else None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not _is_api(request) or request.method == "OPTIONS":
        return await handler(request)
    params = await _parse_params(request)
    request["params"] = params
    key = _api_key(request, params)
    if key is None:
        raise StripeError(401, "You did not provide an API key. You need to provide your API "
                               "key in the Authorization header, using Bearer auth (e.g. "
                               "'Authorization: Bearer YOUR_SECRET_KEY').")
    if key.startswith("sk_test_") and len(key) > 8:
        request["auth"] = "secret"
    elif key.startswith("pk_test_") and len(key) > 8:
        if not any(m == request.method and p.match(request.path)
                   for m, p in PUBLISHABLE_ROUTES):
            raise StripeError(401, "This API call cannot be made with a publishable API key. "
                                   "Please use a secret API key.")
        request["auth"] = "publishable"
    else:
        shown = key[:8] + "*" * max(0, len(key) - 12) + key[-4:]
        raise StripeError(401, f"Invalid API Key provided: {shown}")
    request["api_key"] = key
    return await handler(request)


async def _run(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except UserError as exc:
        return error_response(exc)


def _fault_response(status: int, *, took_effect: bool) -> web.Response:
    resp = json_response(faults.error_body(status), status=status)
    if status == 429:
        resp.headers["Retry-After"] = "1"
    if status >= 500 and took_effect:
        # The request was applied and its 500 is saved: a retry with the same key can only
        # replay it (see stripe-python's HTTPClient._should_retry).
        resp.headers["Stripe-Should-Retry"] = "false"
    return resp


def _body(response: web.StreamResponse) -> bytes:
    body = getattr(response, "body", None)
    return bytes(body) if isinstance(body, bytes | bytearray) else b""


def _in_use(key: str) -> web.Response:
    resp = error_response(StripeError(
        409, f"There is currently another in-progress request using this idempotent key "
             f"(that probably means you submitted twice, and the other request is still going "
             f"through): {key}. Please try again later.", code="idempotency_key_in_use"))
    resp.headers["Idempotency-Key"] = key
    return resp


def _replay(saved: idempotency.Saved, key: str) -> web.Response:
    replay = web.Response(body=saved.body, status=saved.status,
                          content_type="application/json")
    replay.headers["Idempotent-Replayed"] = "true"
    replay.headers["Original-Request"] = saved.request_id
    replay.headers["Idempotency-Key"] = key
    if saved.should_retry is not None:
        replay.headers["Stripe-Should-Retry"] = saved.should_retry
    return replay


@web.middleware
async def idempotency_middleware(request: web.Request,
                                 handler: Handler) -> web.StreamResponse:
    """Saved results and in-flight keys (https://docs.stripe.com/api/idempotent_requests),
    with the fault injector acting around and inside this layer.

    A fault `before` (the default) fails the request before it reaches Stripe: nothing is
    saved, the key stays free. A fault `after` acts once the request has been answered: on a
    first run, a 5xx is what Stripe answered and is saved under the key (replayed to every
    retry), while a dropped connection or another status loses only the response (the real
    result is saved); on a replay it loses or fails only that answer. Any delay while the
    request runs holds its key, so a concurrent request with the key gets 409 at once.
    """
    fault = faults.take(request.method, request.path) if _is_api(request) else None
    if fault is not None and not fault.after and fault.status is not None:
        if fault.delay_s:
            await asyncio.sleep(fault.pause_s())
        if fault.status == 0:
            return drop_connection(request)
        return _fault_response(fault.status, took_effect=False)

    async def delay() -> None:
        if fault is not None and fault.delay_s:
            await asyncio.sleep(fault.pause_s())

    def after(answer: web.StreamResponse) -> web.StreamResponse:
        if fault is None or not fault.after or fault.status is None:
            return answer
        if fault.status == 0:
            return drop_connection(request)
        return _fault_response(fault.status, took_effect=True)

    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key or not _is_api(request):
        if fault is not None and not fault.after:
            await delay()
        response = await _run(request, handler)
        if fault is not None and fault.after:
            await delay()
        return after(response)
    if len(key) > 255:
        raise StripeError(400, "Idempotency keys can be at most 255 characters long.",
                          type="idempotency_error", param="Idempotency-Key")
    scope = (str(request.get("api_key")), key)
    fp = idempotency.fingerprint(request.method, request.path, request.get("params"))
    saved = idempotency.get(scope)
    if saved is not None:
        if saved.fingerprint != fp:
            raise StripeError(
                400, f"Keys for idempotent requests can only be used with the same "
                     f"parameters they were first used with. Try using a key other than "
                     f"'{key}' if you meant to execute a different request.",
                type="idempotency_error")
        await delay()
        if fault is not None and fault.after and fault.status not in (None, 0):
            # A replay's answer failing on its way back: the saved result stays as it was.
            return _fault_response(fault.status, took_effect=False)
        return after(_replay(saved, key))
    if scope in idempotency.in_flight:
        return _in_use(key)
    idempotency.in_flight.add(scope)
    try:
        if fault is not None and not fault.after:
            await delay()
        response = await _run(request, handler)
        if fault is not None and fault.after:
            await delay()
        kept: web.StreamResponse = response
        if fault is not None and fault.after and fault.status is not None \
                and fault.status >= 500:
            kept = _fault_response(fault.status, took_effect=True)
        if idempotency.saves(kept.status):
            idempotency.entries[scope] = idempotency.Saved(
                fingerprint=fp, status=kept.status, body=_body(kept),
                request_id=str(request.get("request_id")), created=time.time(),
                should_retry=kept.headers.get("Stripe-Should-Retry"))
    finally:
        idempotency.in_flight.discard(scope)
    if len(idempotency.entries) % 1000 == 0:
        idempotency.prune()
    answer = after(kept)
    answer.headers["Idempotency-Key"] = key
    return answer


@web.middleware
async def contract_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """With --contract: queue each /v1 request and its answer for checking against Stripe's
    schemas (checked when the violations are read, off the request's own time)."""
    checker = contract.checker
    if checker is None or not _is_api(request):
        return await handler(request)
    response = await _run(request, handler)
    caller = str(request.get("auth"))
    key = str(request.get("api_key") or "")
    checker.queue_exchange(request.method, request.path, dict(request.get("params") or {}),
                           response.status, _body(response), caller=caller,
                           key=key[-6:], request_id=str(request.get("request_id")))
    return response


@web.middleware
async def persist_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    finally:
        if persistence.enabled() and request.method in ("POST", "DELETE"):
            persistence.save()


# --------------------------------------------------------------------------- API routes

Call = Callable[[web.Request, dict[str, Any]], Any]


def _expand(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):  # "expand[0]=a" decoded without list conversion
        return [str(v) for v in value.values()]
    return [str(v) for v in value]


def api(call: Call, intent: str | None = None) -> Handler:
    """Wrap `call(request, params) -> StripeObject` into a JSON handler.

    With a publishable key, intent routes require the intent's own client_secret.
    """
    async def handler(request: web.Request) -> web.StreamResponse:
        params = dict(request.get("params") or {})
        expand = _expand(params.pop("expand", None))
        for noise in res.NOISE_PARAMS:
            params.pop(noise, None)
        if intent is not None and request.get("auth") == "publishable":
            cls = res.PaymentIntent if intent == "payment_intent" else res.SetupIntent
            obj = res.lookup(cls, request.match_info["id"])
            res.check_client_secret(obj, params.get("client_secret"), intent)
        result = call(request, params)
        return json_response(result._export(expand=expand))
    return handler


def _id(request: web.Request) -> str:
    return request.match_info["id"]


def _retrieve(cls: Any, kind: str) -> Call:
    def call(request: web.Request, params: dict[str, Any]) -> Any:
        obj = res.lookup(cls, _id(request))
        secret = params.pop("client_secret", None)
        if secret is not None:
            res.check_client_secret(obj, secret, kind)
        res.reject_unknown(params)
        return obj
    return call


def _list(cls: Any, url: str) -> Call:
    return lambda request, params: cls._api_list_all(url, **params)


def add_api_routes(app: web.Application) -> None:
    r = app.router
    pi, si, pm = res.PaymentIntent, res.SetupIntent, res.PaymentMethod
    simple: list[tuple[str, str, Call, str | None]] = [
        # PaymentIntents
        ("POST", "/v1/payment_intents", lambda q, p: pi._api_create(**p), None),
        ("GET", "/v1/payment_intents", _list(pi, "/v1/payment_intents"), None),
        ("GET", "/v1/payment_intents/{id}", _retrieve(pi, "payment_intent"), "payment_intent"),
        ("POST", "/v1/payment_intents/{id}", lambda q, p: pi._api_update(_id(q), **p), None),
        ("POST", "/v1/payment_intents/{id}/confirm",
         lambda q, p: pi._api_confirm(_id(q), **p), "payment_intent"),
        ("POST", "/v1/payment_intents/{id}/cancel",
         lambda q, p: pi._api_cancel(_id(q), **p), None),
        ("POST", "/v1/payment_intents/{id}/capture",
         lambda q, p: pi._api_capture(_id(q), **p), None),
        ("POST", "/v1/payment_intents/{id}/_authenticate",
         lambda q, p: pi._api_authenticate(_id(q), **p), None),
        # SetupIntents
        ("POST", "/v1/setup_intents", lambda q, p: si._api_create(**p), None),
        ("GET", "/v1/setup_intents", _list(si, "/v1/setup_intents"), None),
        ("GET", "/v1/setup_intents/{id}", _retrieve(si, "setup_intent"), "setup_intent"),
        ("POST", "/v1/setup_intents/{id}", lambda q, p: si._api_update(_id(q), **p), None),
        ("POST", "/v1/setup_intents/{id}/confirm",
         lambda q, p: si._api_confirm(_id(q), **p), "setup_intent"),
        ("POST", "/v1/setup_intents/{id}/cancel",
         lambda q, p: si._api_cancel(_id(q), **p), "setup_intent"),
        ("POST", "/v1/setup_intents/{id}/_authenticate",
         lambda q, p: si._api_authenticate(_id(q), **p), None),
        # PaymentMethods
        ("POST", "/v1/payment_methods", lambda q, p: pm(**p), None),
        ("GET", "/v1/payment_methods", _list(pm, "/v1/payment_methods"), None),
        ("GET", "/v1/payment_methods/{id}", lambda q, p: _plain(pm._get(_id(q)), p), None),
        ("POST", "/v1/payment_methods/{id}", lambda q, p: pm._api_update(_id(q), **p), None),
        ("POST", "/v1/payment_methods/{id}/attach",
         lambda q, p: pm._api_attach(_id(q), **p), None),
        ("POST", "/v1/payment_methods/{id}/detach",
         lambda q, p: pm._api_detach(_id(q), **p), None),
        # Customers (the rest comes from localstripe below)
        ("POST", "/v1/customers", lambda q, p: res.customer_create(**p), None),
        ("POST", "/v1/customers/{id}", lambda q, p: res.customer_update(_id(q), **p), None),
        ("GET", "/v1/customers/{id}/payment_methods",
         lambda q, p: res.customer_payment_methods(_id(q), **p), None),
        ("GET", "/v1/customers/{id}/payment_methods/{pm}",
         lambda q, p: res.customer_payment_method(_id(q), q.match_info["pm"], **p), None),
        # Charges, refunds, disputes, events
        ("GET", "/v1/charges", _list(res.Charge, "/v1/charges"), None),
        ("GET", "/v1/charges/{id}", lambda q, p: _plain(res.lookup(res.Charge, _id(q)), p),
         None),
        ("POST", "/v1/charges/{id}", lambda q, p: res.Charge._api_update(_id(q), **p), None),
        ("POST", "/v1/charges", lambda q, p: res.Charge._api_create(**p), None),
        ("GET", "/v1/charges/{id}/refunds",
         lambda q, p: res.Refund._api_list_all(f"/v1/charges/{_id(q)}/refunds",
                                               charge=_id(q), **p), None),
        ("POST", "/v1/refunds", lambda q, p: res.Refund._api_create(**p), None),
        ("GET", "/v1/refunds", _list(res.Refund, "/v1/refunds"), None),
        ("GET", "/v1/refunds/{id}", lambda q, p: _plain(res.lookup(res.Refund, _id(q)), p),
         None),
        ("POST", "/v1/refunds/{id}", lambda q, p: res.Refund._api_update(_id(q), **p), None),
        ("GET", "/v1/disputes", _list(res.Dispute, "/v1/disputes"), None),
        ("GET", "/v1/disputes/{id}", lambda q, p: _plain(res.lookup(res.Dispute, _id(q)), p),
         None),
        ("GET", "/v1/events", _list(res.Event, "/v1/events"), None),
        ("GET", "/v1/events/{id}", lambda q, p: _plain(res.lookup(res.Event, _id(q)), p),
         None),
    ]
    for method, path, call, intent in simple:
        r.add_route(method, path, api(call, intent))

    # Everything else (products, plans, subscriptions, invoices, customer sources…) is
    # localstripe's own implementation, unchanged.
    seam.add_localstripe_routes(
        r, skip_prefixes=("/v1/payment_intents", "/v1/setup_intents", "/v1/payment_methods",
                          "/v1/charges", "/v1/refunds", "/v1/events"),
        skip={("POST", "/v1/customers"), ("POST", "/v1/customers/{id}")})


def _plain(obj: Any, params: dict[str, Any]) -> Any:
    res.reject_unknown(params)
    return obj


# --------------------------------------------------------------------------- control routes


async def _control_body(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise StripeError(400, "Invalid JSON body.") from None
        return body if isinstance(body, dict) else {}
    form = await request.post()
    data: dict[str, Any] = seam.unflatten_data(form) if form else {}
    # A plain form repeats a key for a list (events=a&events=b): keep every value.
    for key in set(form.keys()):
        values = form.getall(key)
        if len(values) > 1 and "[" not in key:
            data[key] = [str(v) for v in values]
    return data


async def config_webhook(request: web.Request) -> web.Response:
    data = await _control_body(request)
    url, secret = data.get("url"), data.get("secret")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise StripeError(400, "url must be an http(s) URL.", param="url")
    if not isinstance(secret, str) or not secret:
        raise StripeError(400, "secret is required.", param="secret")
    events = data.get("events")
    if isinstance(events, str):
        events = [e for e in events.split(",") if e]
    if events is not None and not isinstance(events, list):
        raise StripeError(400, "events must be a list of event types.", param="events")
    try:
        duplicate = int(data.get("duplicate") or 1)
        window = float(data.get("shuffle_window_s") or 0.5)
        drop_rate = float(data.get("drop_rate") or 0)
    except (TypeError, ValueError):
        raise StripeError(400, "duplicate, shuffle_window_s and drop_rate are numbers.") \
            from None
    if not 1 <= duplicate <= 20 or not 0 <= window <= 10 or not 0 <= drop_rate <= 1:
        raise StripeError(400, "duplicate must be 1..20, shuffle_window_s 0..10, "
                               "drop_rate 0..1.")
    endpoint = webhooks.Endpoint(
        name=request.match_info["name"], url=url, secret=secret, events=events,
        duplicate=duplicate, shuffle=str(data.get("shuffle", "")).lower() in ("true", "1"),
        shuffle_window_s=window, drop_rate=drop_rate)
    webhooks.register(endpoint)
    return json_response(endpoint.public())


async def delete_webhook(request: web.Request) -> web.Response:
    webhooks.endpoints.pop(request.match_info["name"], None)
    return json_response({"deleted": True})


async def list_webhooks(request: web.Request) -> web.Response:
    return json_response({"endpoints": [e.public() for e in webhooks.endpoints.values()],
                          "deliveries": webhooks.deliveries[-200:]})


async def add_fault(request: web.Request) -> web.Response:
    fault = faults.parse(await _control_body(request))
    faults.active.append(fault)
    return json_response({"faults": [f.public() for f in faults.active]})


async def list_faults(request: web.Request) -> web.Response:
    return json_response({"faults": [f.public() for f in faults.active]})


async def clear_faults(request: web.Request) -> web.Response:
    faults.active.clear()
    return json_response({"faults": []})


async def contract_report(request: web.Request) -> web.Response:
    """The contract violations seen so far (`?clear=true` forgets them once read)."""
    if contract.checker is None:
        return json_response({"enabled": False, "checked": 0, "violations": []})
    clear = request.query.get("clear", "").lower() in ("1", "true")
    return json_response(contract.checker.report(clear=clear))


async def wipe_data(request: web.Request) -> web.Response:
    """Everything goes: objects, idempotency keys, webhook endpoints, faults."""
    seam.store.clear()
    idempotency.reset()
    webhooks.reset()
    faults.active.clear()
    return json_response({"deleted": True})


async def preflight(request: web.Request) -> web.Response:
    return web.Response(status=204)


# Web origins (besides the emulator's own) whose pages may call /v1 from a browser, as
# Stripe.js does from the shop's pages: `--allow-origin`, exact (`http://127.0.0.1:5000`) or
# any port of one host (`http://127.0.0.1:*`). Empty: no other origin.
allowed_origins: list[str] = []


def own_origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def origin_allowed(origin: str) -> bool:
    """True for an origin `--allow-origin` names (a `:*` entry takes any port of its host)."""
    for allowed in allowed_origins:
        if allowed.endswith(":*"):
            host, _, port = origin.rpartition(":")
            if host == allowed[:-2] and port.isdigit():
                return True
        elif origin == allowed:
            return True
    return False


def _is_control(request: web.Request) -> bool:
    return request.path.startswith("/_config/") or request.path == "/_config"


@web.middleware
async def control_origin_middleware(request: web.Request,
                                    handler: Handler) -> web.StreamResponse:
    """The control routes answer only requests from no web page or from the emulator's own:
    a page on any other origin (open in a developer's browser during `make dev`) cannot
    register a webhook, read the data or wipe it, not even with a plain form post."""
    origin = request.headers.get("Origin")
    if _is_control(request) and origin is not None and origin != own_origin(request):
        return json_response({"error": {
            "type": "invalid_request_error",
            "message": "The emulator's control routes do not answer other web origins."}},
            status=403)
    return await handler(request)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """CORS for /v1 and Stripe.js only, and only for the origins allowed (none on /_config)."""
    origin = request.headers.get("Origin")
    if origin and not _is_control(request) and origin_allowed(origin):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS, DELETE"
        response.headers["Access-Control-Expose-Headers"] = "Request-Id, Idempotent-Replayed"
        response.headers["Vary"] = "Origin"


async def _close_webhooks(app: web.Application) -> None:
    await webhooks.close()


async def _resume_background(app: web.Application) -> None:
    res.resume_background()


def create_app(allow_origins: list[str] | None = None) -> web.Application:
    allowed_origins[:] = list(allow_origins or [])
    seam.check_version()
    res.install()
    res.on_background_change.append(persistence.save)
    app = web.Application(middlewares=[
        # The request id is set first so every error body can link to it; persist sits
        # outside idempotency so the saved key is written with the object; the contract check
        # sees what the client sees (replays, faults); faults act inside idempotency.
        control_origin_middleware, request_id_middleware, error_middleware,
        persist_middleware, auth_middleware,
        contract_middleware, idempotency_middleware])
    app.on_response_prepare.append(add_cors_headers)
    app.on_cleanup.append(_close_webhooks)
    app.on_startup.append(_resume_background)
    add_api_routes(app)
    r = app.router
    r.add_post("/_config/webhooks/{name}", config_webhook)
    r.add_delete("/_config/webhooks/{name}", delete_webhook)
    r.add_get("/_config/webhooks", list_webhooks)
    r.add_post("/_config/faults", add_fault)
    r.add_get("/_config/faults", list_faults)
    r.add_delete("/_config/faults", clear_faults)
    r.add_delete("/_config/data", wipe_data)
    r.add_get("/_config/contract", contract_report)
    js.register(app)
    r.add_route("OPTIONS", "/{tail:.*}", preflight)
    return app
