"""Admin pages: every payment, its timeline and the refund form."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")
