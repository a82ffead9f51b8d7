"""Flask extensions, created unbound here and bound to the app in create_app()."""

from flask import Flask, current_app, has_app_context
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mail import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from limits.storage import Storage
from limits.strategies import RateLimiter

from payments_site.models.base import Base


class AppLimiter(Limiter):
    """Flask-Limiter counting in the storage of the app that handles the request.

    Flask-Limiter keeps one storage on the extension object, so each `init_app` would move
    every app of the process to the newest app's storage (RATELIMIT_STORAGE_URI); each app
    keeps its own here, as it keeps its own database engine and Redis client.
    """

    def init_app(self, app: Flask) -> None:
        super().init_app(app)
        if self._storage is not None and self._limiter is not None:
            app.extensions["limiter_storage"] = (self._storage, self._limiter)

    @staticmethod
    def _own() -> tuple[Storage, RateLimiter] | None:
        if not has_app_context():
            return None
        own: tuple[Storage, RateLimiter] | None = current_app.extensions.get("limiter_storage")
        return own

    @property
    def storage(self) -> Storage:
        own = self._own()
        return own[0] if own is not None else super().storage

    @property
    def limiter(self) -> RateLimiter:
        own = self._own()
        if own is None or (self._storage_dead and self._in_memory_fallback_enabled):
            return super().limiter
        return own[1]


db = SQLAlchemy(model_class=Base)
migrate = Migrate(render_as_batch=True, compare_type=True)
login_manager = LoginManager()
csrf = CSRFProtect()
mail = Mail()
limiter = AppLimiter(key_func=get_remote_address)
