"""JSON catalog for the pages' scripts and API clients."""

from __future__ import annotations

from flask import Blueprint, jsonify

from payments_site.services.catalog import active_products, product_to_dict

bp = Blueprint("api_catalog", __name__, url_prefix="/api")


@bp.get("/products")
def list_products():
    """200 with every active product (public)."""
    return jsonify(data=[product_to_dict(p) for p in active_products()])
