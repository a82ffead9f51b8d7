"""The customer's saved cards page."""

from flask import Blueprint

bp = Blueprint("cards", __name__, url_prefix="/account/cards")
