"""The OpenAPI document of the JSON API."""

from __future__ import annotations

from flask import Blueprint, jsonify

from payments_site.openapi import openapi_document

bp = Blueprint("api_docs", __name__, url_prefix="/api")


@bp.get("/openapi.json")
def openapi_json():
    """200 with the OpenAPI 3.1 document (public)."""
    return jsonify(openapi_document())
