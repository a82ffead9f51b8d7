"""The `site` blueprint: the pages customers use (the shop, signing in, their account)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("site", __name__)
