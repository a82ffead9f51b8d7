"""The `admin` blueprint (/admin) and its one access check, before every admin page."""

from __future__ import annotations

import typing

from flask import Blueprint
from flask_login import current_user
from werkzeug.wrappers import Response

from payments_site.errors import Forbidden
from payments_site.extensions import login_manager

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def admins_only() -> Response | None:
    """Anonymous visitors go to the login page; customers get 403."""
    if not current_user.is_authenticated:
        return typing.cast(Response, login_manager.unauthorized())
    if not current_user.is_admin:
        raise Forbidden("This area is for administrators.")
    return None
