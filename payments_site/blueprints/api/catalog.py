"""The JSON catalog for the pages' scripts and API clients."""

from __future__ import annotations

from typing import Any

from payments_site.blueprints.api.blueprint import PUBLIC, bp
from payments_site.blueprints.api.schemas import Product, Products, answers
from payments_site.services.catalog import active_products


@bp.get("/products", summary="The catalog", responses=answers(200, Products),
        openapi_extensions=PUBLIC)
def list_products() -> dict[str, Any]:
    """200 with every active product (public)."""
    return Products(data=[Product.of(p) for p in active_products()]).dump()
