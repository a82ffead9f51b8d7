"""The JSON API (/api): one blueprint, `api`, whose routes declare their schemas.

Its modules add their routes to `blueprint.bp`: auth (tokens), catalog, payments (process,
history, refunds, receipts), cards, webhooks and docs (/api/openapi.json).
"""

from payments_site.blueprints.api import auth, cards, catalog, docs, payments, webhooks
from payments_site.blueprints.api.blueprint import OPENAPI_OPTIONS, bp
from payments_site.blueprints.api.docs import openapi_document

__all__ = ["OPENAPI_OPTIONS", "auth", "bp", "cards", "catalog", "docs", "openapi_document",
           "payments", "webhooks"]
