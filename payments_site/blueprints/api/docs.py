"""The OpenAPI document of the JSON API, written from the routes' declared schemas."""

from __future__ import annotations

import functools
from typing import Any

from flask_openapi3.openapi import OpenAPI

from payments_site.blueprints.api.blueprint import OPENAPI_OPTIONS, PUBLIC, bp


@functools.cache
def openapi_document() -> dict[str, Any]:
    """Every route of the `api` blueprint with its schemas (the same for every app: it
    depends on the code alone, so tests read it without building the app)."""
    app = OpenAPI(__name__, **OPENAPI_OPTIONS)
    app.register_api(bp)
    return app.api_doc


@bp.get("/openapi.json", doc_ui=False, openapi_extensions=PUBLIC)
def openapi_json() -> dict[str, Any]:
    """200 with the OpenAPI 3.1 document (public)."""
    return openapi_document()
