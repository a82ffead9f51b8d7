"""Customer account pages: payment history and a payment's detail."""

from flask import Blueprint

bp = Blueprint("account", __name__, url_prefix="/account")
