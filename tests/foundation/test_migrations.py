"""Migrations: a single Alembic head, and models that agree with the migrated schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import Migrate
from sqlalchemy import inspect

from payments_site.extensions import db


def test_single_head(app):
    config = app.extensions["migrate"].migrate.get_config()
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, heads


def test_models_match_migrations(app):
    """The equivalent of `flask db check` on the real backend of this run."""
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_every_foreign_key_is_indexed(app):
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


def test_all_design_tables_exist(app):
    names = set(inspect(db.engine).get_table_names())
    assert {"users", "products", "payments", "payment_items", "payment_methods", "refunds",
            "receipts", "idempotency_keys", "webhook_events", "audit_log"} <= names


def test_migrate_is_configured_for_batch_mode(app):
    migrate: Migrate = app.extensions["migrate"].migrate
    assert migrate.alembic_ctx_kwargs.get("render_as_batch") is True
