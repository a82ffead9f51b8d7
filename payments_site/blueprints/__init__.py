"""Blueprints: parse input (`parsing`), check access, call one service, render or serialize.

Three packages, one blueprint each: `site` (the customers' pages), `admin` (/admin, admins
only) and `api` (/api, JSON routes with declared schemas); plus `health`, the probes.
"""

from flask_openapi3.openapi import OpenAPI

from payments_site.blueprints import admin, api, health, metrics, parsing, site


def register_blueprints(app: OpenAPI) -> None:
    # Before any route is added: `<id:…>` is read when each route is compiled.
    app.url_map.converters["id"] = parsing.RowIdConverter
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(site.bp)
    app.register_blueprint(admin.bp)
    app.register_api(api.bp)
