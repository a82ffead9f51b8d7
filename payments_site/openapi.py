"""The OpenAPI 3 document of every JSON route (served at GET /api/openapi.json)."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    descriptions = {400: "Invalid request", 401: "Not authenticated", 402: "Card declined",
                    403: "Forbidden (role or CSRF)", 404: "Not found or not yours",
                    409: "Idempotency-Key in progress", 422: "Idempotency-Key reused",
                    429: "Rate limited", 502: "Payment provider error",
                    503: "Payment provider unavailable"}
    return {str(s): {"description": descriptions[s], **_json(_ERROR)} for s in statuses}


_IDEMPOTENCY_HEADER = {"name": "Idempotency-Key", "in": "header", "required": False,
                       "schema": {"type": "string", "minLength": 1, "maxLength": 255}}
_PAYMENT_ID = {"name": "payment_id", "in": "path", "required": True,
               "schema": {"type": "string", "minLength": 1, "maxLength": 64}}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                           "param": {"type": "string"}, "decline_code": {"type": "string"}}},
            "payment": {"$ref": "#/components/schemas/Payment"}},
    },
    "Product": {
        "type": "object", "required": ["id", "name", "unit_amount", "currency"],
        "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                       "description": {"type": "string"},
                       "unit_amount": {"type": "integer", "minimum": 1},
                       "currency": {"type": "string", "minLength": 3, "maxLength": 3}},
    },
    "Payment": {
        "type": "object",
        "required": ["id", "status", "amount", "currency", "amount_refunded", "refund_status",
                     "items", "created_at"],
        "properties": {
            "id": {"type": "string", "pattern": "^pay_"},
            "status": {"type": "string", "enum": [
                "requires_payment_method", "requires_action", "processing", "succeeded",
                "canceled", "failed"]},
            "amount": {"type": "integer"}, "currency": {"type": "string"},
            "amount_refunded": {"type": "integer", "minimum": 0},
            "refund_status": {"type": "string", "enum": ["none", "partial", "full"]},
            "description": {"type": "string"},
            "items": {"type": "array", "items": {
                "type": "object",
                "properties": {"product_id": {"type": "integer"}, "name": {"type": "string"},
                               "quantity": {"type": "integer"},
                               "unit_amount": {"type": "integer"}}}},
            "payment_method": {"type": ["object", "null"], "properties": {
                "brand": {"type": ["string", "null"]}, "last4": {"type": ["string", "null"]}}},
            "receipt": {"type": ["object", "null"], "properties": {
                "number": {"type": "string"}, "url": {"type": "string"}}},
            "failure": {"type": ["object", "null"], "properties": {
                "code": {"type": ["string", "null"]}, "message": {"type": ["string", "null"]}}},
            "created_at": {"type": "string", "format": "date-time"},
            "stripe_payment_intent_id": {"type": ["string", "null"]},
        },
    },
    "PaymentMethod": {
        "type": "object", "required": ["id", "brand", "last4", "exp_month", "exp_year",
                                       "is_default"],
        "properties": {"id": {"type": "string"}, "brand": {"type": "string"},
                       "last4": {"type": "string"}, "exp_month": {"type": "integer"},
                       "exp_year": {"type": "integer"}, "is_default": {"type": "boolean"}},
    },
    "Refund": {
        "type": "object", "required": ["id", "payment_id", "amount", "currency", "status"],
        "properties": {
            "id": {"type": "string", "pattern": "^ref_"}, "payment_id": {"type": "string"},
            "amount": {"type": "integer"}, "currency": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "succeeded", "failed"]},
            "reason": {"type": ["string", "null"],
                       "enum": ["requested_by_customer", "duplicate", "fraudulent", None]},
            "created_at": {"type": "string", "format": "date-time"}},
    },
}

_PM_ID_BODY = {"type": "object", "required": ["payment_method_id"],
               "properties": {"payment_method_id": {"type": "string"}}}

PATHS: dict[str, Any] = {
    "/api/auth/token": {"post": {
        "summary": "Exchange credentials for a Bearer token", "security": [],
        "requestBody": {"required": True, **_json({
            "type": "object", "required": ["email", "password"],
            "properties": {"email": {"type": "string"}, "password": {"type": "string"}}})},
        "responses": {"200": {"description": "A token", **_json({
            "type": "object", "required": ["token", "token_type", "expires_in"],
            "properties": {"token": {"type": "string"}, "token_type": {"type": "string"},
                           "expires_in": {"type": "integer"}}})},
            **_errors(400, 401, 429)}}},
    "/api/auth/me": {"get": {
        "summary": "The caller's account",
        "responses": {"200": {"description": "The user", **_json({"type": "object"})},
                      **_errors(401)}}},
    "/api/products": {"get": {
        "summary": "The catalog", "security": [],
        "responses": {"200": {"description": "Products", **_json({
            "type": "object", "required": ["data"],
            "properties": {"data": {"type": "array",
                                    "items": {"$ref": "#/components/schemas/Product"}}}})}}}},
    "/api/payments/process": {"post": {
        "summary": "Create (and with a saved card, confirm) the payment for a cart",
        "parameters": [_IDEMPOTENCY_HEADER],
        "requestBody": {"required": True, **_json({
            "type": "object", "required": ["items"],
            "properties": {
                "items": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["product_id", "quantity"],
                    "properties": {"product_id": {"type": "integer"},
                                   "quantity": {"type": "integer", "minimum": 1}}}},
                "payment_method_id": {"type": "string"},
                "save_payment_method": {"type": "boolean"},
                "checkout_attempt": {
                    "type": "string", "pattern": "^[A-Za-z0-9_-]{16,64}$",
                    "description": "The checkout page's attempt token: every submit with the "
                                   "same token and cart is the same payment (double clicks, "
                                   "retries after a decline); a new token is a new purchase"}}})},
        "responses": {"201": {"description": "The payment", **_json({
            "type": "object", "required": ["payment", "client_secret", "requires_action"],
            "properties": {"payment": {"$ref": "#/components/schemas/Payment"},
                           "client_secret": {"type": ["string", "null"]},
                           "requires_action": {"type": "boolean"}}})},
            **_errors(400, 401, 402, 403, 404, 409, 422, 429, 502, 503)}}},
    "/api/payments/history": {"get": {
        "summary": "The caller's payments, newest first",
        "parameters": [
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                         "maximum": 100}},
            {"name": "cursor", "in": "query", "schema": {"type": "string"}},
            {"name": "status", "in": "query", "schema": {"type": "string"}}],
        "responses": {"200": {"description": "A page", **_json({
            "type": "object", "required": ["data", "next_cursor"],
            "properties": {"data": {"type": "array",
                                    "items": {"$ref": "#/components/schemas/Payment"}},
                           "next_cursor": {"type": ["string", "null"]}}})},
            **_errors(400, 401)}}},
    "/api/payments/{payment_id}": {"get": {
        "summary": "One payment with its refunds", "parameters": [_PAYMENT_ID],
        "responses": {"200": {"description": "The payment", **_json({
            "type": "object", "required": ["payment", "refunds"],
            "properties": {"payment": {"$ref": "#/components/schemas/Payment"},
                           "refunds": {"type": "array",
                                       "items": {"$ref": "#/components/schemas/Refund"}}}})},
            **_errors(401, 404)}}},
    "/api/payments/refund": {"post": {
        "summary": "Refund all or part of a payment (admin)",
        "parameters": [_IDEMPOTENCY_HEADER],
        "requestBody": {"required": True, **_json({
            "type": "object", "required": ["payment_id"],
            "properties": {"payment_id": {"type": "string"},
                           "amount": {"type": "integer", "minimum": 1},
                           "reason": {"type": ["string", "null"], "enum": [
                               "requested_by_customer", "duplicate", "fraudulent", None]}}})},
        "responses": {"202": {"description": "Refund accepted", **_json({
            "type": "object", "required": ["refund"],
            "properties": {"refund": {"$ref": "#/components/schemas/Refund"}}})},
            **_errors(400, 401, 403, 404, 409, 422, 429)}}},
    "/api/payments/{payment_id}/receipt/resend": {"post": {
        "summary": "E-mail the stored receipt again", "parameters": [_PAYMENT_ID],
        "responses": {"202": {"description": "Queued", **_json({
            "type": "object", "properties": {"queued": {"type": "boolean"}}})},
            **_errors(401, 403, 404, 429)}}},
    "/api/payments/methods/setup-intent": {"post": {
        "summary": "A SetupIntent to save a card with Stripe.js",
        "responses": {"201": {"description": "Client secret", **_json({
            "type": "object", "required": ["client_secret"],
            "properties": {"client_secret": {"type": "string"}}})},
            **_errors(401, 403, 429, 502, 503)}}},
    "/api/payments/methods/save": {"post": {
        "summary": "Save a card to the caller's account",
        "requestBody": {"required": True, **_json({
            "type": "object",
            "properties": {"setup_intent_id": {"type": "string"},
                           "payment_method_id": {"type": "string"},
                           "make_default": {"type": "boolean"}}})},
        "responses": {"201": {"description": "Saved", **_json({
            "type": "object", "required": ["payment_method"],
            "properties": {"payment_method": {"$ref": "#/components/schemas/PaymentMethod"}}})},
            **_errors(400, 401, 402, 403, 404, 429, 502, 503)}}},
    "/api/payments/methods/list": {"get": {
        "summary": "The caller's saved cards, default first",
        "responses": {"200": {"description": "Cards", **_json({
            "type": "object", "required": ["data"],
            "properties": {"data": {"type": "array", "items": {
                "$ref": "#/components/schemas/PaymentMethod"}}}})}, **_errors(401)}}},
    "/api/payments/methods/delete": {"delete": {
        "summary": "Remove a saved card",
        "parameters": [{"name": "payment_method_id", "in": "query", "required": False,
                        "schema": {"type": "string"}}],
        "requestBody": {"required": False, **_json(_PM_ID_BODY)},
        "responses": {"200": {"description": "Deleted", **_json({
            "type": "object", "required": ["deleted", "id"],
            "properties": {"deleted": {"type": "boolean"}, "id": {"type": "string"}}})},
            **_errors(400, 401, 403, 404, 502, 503)}}},
    "/api/payments/methods/default": {"post": {
        "summary": "Make a saved card the default",
        "requestBody": {"required": True, **_json(_PM_ID_BODY)},
        "responses": {"200": {"description": "The card", **_json({
            "type": "object", "required": ["payment_method"],
            "properties": {"payment_method": {"$ref": "#/components/schemas/PaymentMethod"}}})},
            **_errors(400, 401, 403, 404, 502, 503)}}},
    "/api/webhooks/stripe": {"post": {
        "summary": "Stripe webhook endpoint (signed; no login, no CSRF)", "security": [],
        "parameters": [{"name": "Stripe-Signature", "in": "header", "required": True,
                        "schema": {"type": "string"}}],
        "requestBody": {"required": True, **_json({"type": "object"})},
        "responses": {"200": {"description": "Received", **_json({
            "type": "object", "properties": {"received": {"type": "boolean"}}})},
            **_errors(400)}}},
}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "payments_site API", "version": "1.0.0",
                 "description": "JSON routes for the pages' scripts and API clients. Session "
                                "cookie + X-CSRFToken, or Authorization: Bearer."},
        "servers": [{"url": "/"}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "session": {"type": "apiKey", "in": "cookie",
                                            "name": "session"}}},
        "security": [{"bearer": []}, {"session": []}],
        "paths": PATHS,
    }
