"""JSON routes for saved cards (/api/payments/methods/*)."""

from flask import Blueprint

bp = Blueprint("api_methods", __name__, url_prefix="/api/payments/methods")
