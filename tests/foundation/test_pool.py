"""Pooled connections are pinged only after sitting idle (models/pool.py).

Real PostgreSQL: the server ends a pooled connection's backend (as a restart, a failover or
an idle timeout would), and the pool must hand out a working connection anyway.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, exc, text

from payments_site.config import normalize_database_url
from payments_site.models.pool import install_idle_ping
from tests.harness.services import postgres_admin_url


@pytest.fixture
def pg_url(database_url: str) -> str:
    if not database_url.startswith("postgres"):
        pytest.skip("needs PostgreSQL to end a connection from the server side")
    return normalize_database_url(database_url)


def _engine(url: str, idle_seconds: float) -> Engine:
    engine = create_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=False)
    install_idle_ping(engine, idle_seconds)
    return engine


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    made: list[Engine] = []
    yield made
    for engine in made:
        engine.dispose()


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _end_backend(pid: int) -> None:
    with psycopg.connect(postgres_admin_url(), autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    time.sleep(0.1)  # the backend is gone once the server has processed the signal


def test_connection_idle_past_the_threshold_is_pinged_and_replaced(pg_url, engines):
    engine = _engine(pg_url, idle_seconds=0.2)
    engines.append(engine)
    first = _backend_pid(engine)
    _end_backend(first)
    time.sleep(0.3)
    # The ping finds the dead connection; the pool reconnects and the statement runs.
    assert _backend_pid(engine) != first


def test_recently_used_connection_is_not_pinged_and_the_pool_recovers(pg_url, engines):
    """The trade-off, shown: within the idle threshold no ping is sent, so a connection the
    server ended a moment ago fails its next statement once (the request fails cleanly), the
    pool is invalidated, and the statement after it works."""
    engine = _engine(pg_url, idle_seconds=60)
    engines.append(engine)
    first = _backend_pid(engine)
    _end_backend(first)
    with pytest.raises(exc.OperationalError) as failed:
        _backend_pid(engine)
    assert failed.value.connection_invalidated
    assert _backend_pid(engine) != first


def test_threshold_zero_pings_before_every_use(pg_url, engines):
    engine = _engine(pg_url, idle_seconds=0)
    engines.append(engine)
    first = _backend_pid(engine)
    _end_backend(first)
    assert _backend_pid(engine) != first


def test_app_engine_does_not_use_sqlalchemys_ping_on_every_checkout(app):
    from payments_site.extensions import db

    assert db.engine.pool._pre_ping is False
    assert app.config["DB_POOL_PRE_PING"] is True and app.config["DB_POOL_PING_IDLE"] == 2.0


@pytest.mark.parametrize("raw", ["soon", "-1"])
def test_bad_ping_idle_setting_is_refused(monkeypatch, tmp_path, raw):
    from payments_site.config import ConfigError, load_config

    monkeypatch.setenv("DB_POOL_PING_IDLE", raw)
    with pytest.raises(ConfigError, match="DB_POOL_PING_IDLE"):
        load_config(tmp_path)
