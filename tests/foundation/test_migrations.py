"""Migrations: a single Alembic head, and models that agree with the migrated schema.

The schema checks run twice: on this session's database (PostgreSQL on CI) and on a fresh
SQLite file migrated from nothing with `upgrade`, so both supported backends are held to
the models in every run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from flask_migrate import Migrate, upgrade
from sqlalchemy import inspect

from payments_site import create_app
from payments_site.config import engine_options
from payments_site.extensions import db


@pytest.fixture(params=["session-database", "fresh-sqlite"])
def migrated(request: pytest.FixtureRequest, app: Flask, tmp_path) -> Iterator[Flask]:
    """An app whose database the migrations built: the session's, or a new SQLite file
    upgraded from nothing here (app context pushed)."""
    if request.param == "session-database":
        yield app
        return
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    config = {k: v for k, v in app.config.items() if k.isupper() and k != "SERVER_NAME"}
    sqlite_app = create_app({**config, "SQLALCHEMY_DATABASE_URI": url,
                             "SQLALCHEMY_ENGINE_OPTIONS": engine_options(url)})
    with sqlite_app.app_context():
        assert db.engine.dialect.name == "sqlite"
        assert inspect(db.engine).get_table_names() == []
        upgrade()
        yield sqlite_app
        db.session.remove()
        db.engine.dispose()


def test_single_head(migrated):
    """One head, and `upgrade` takes the database to it."""
    config = migrated.extensions["migrate"].migrate.get_config()
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, heads
    with db.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_heads() == tuple(heads)


def test_models_match_migrations(migrated):
    """The equivalent of `flask db check`, on each backend."""
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_every_foreign_key_is_indexed(migrated):
    inspector = inspect(db.engine)
    missing = []
    for table in db.metadata.sorted_tables:
        indexed = {tuple(ix["column_names"]) for ix in inspector.get_indexes(table.name)}
        indexed |= {tuple(uq["column_names"])
                    for uq in inspector.get_unique_constraints(table.name)}
        indexed |= {tuple(inspector.get_pk_constraint(table.name)["constrained_columns"])}
        for fk in table.foreign_keys:
            column = fk.parent.name
            if not any(cols and cols[0] == column for cols in indexed):
                missing.append(f"{table.name}.{column}")
    assert missing == []


def test_all_design_tables_exist(migrated):
    names = set(inspect(db.engine).get_table_names())
    assert {"users", "products", "payments", "payment_items", "payment_methods", "refunds",
            "receipts", "idempotency_keys", "webhook_events", "audit_log"} <= names


def test_migrate_is_configured_for_batch_mode(app):
    migrate: Migrate = app.extensions["migrate"].migrate
    assert migrate.alembic_ctx_kwargs.get("render_as_batch") is True
