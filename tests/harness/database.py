"""The test database: migrated once per process, emptied before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask_migrate import upgrade
from sqlalchemy import Engine, create_engine, text

from payments_site import create_app
from payments_site.config import normalize_database_url
from payments_site.extensions import db
from tests.harness.config import services_config
from tests.harness.services import Services


class DatabaseCleaner:
    """Empties the tables a test wrote to and restarts every id sequence.

    DELETE, children first: on tables of a few rows it costs a few milliseconds, where
    TRUNCATE (new files for every table and index) costs a few hundred.
    """

    def __init__(self, database_url: str) -> None:
        # One connection, checked before each use: some tests end every connection to the
        # database (a server-side outage).
        self.engine: Engine = create_engine(normalize_database_url(database_url),
                                            pool_size=1, max_overflow=0, pool_pre_ping=True)
        self.tables = [t.name for t in reversed(db.metadata.sorted_tables)]

    def clean(self) -> None:
        with self.engine.begin() as conn:
            if conn.dialect.name != "postgresql":
                for table in self.tables:
                    conn.execute(text(f'DELETE FROM "{table}"'))
                return
            written = set(conn.execute(text(" UNION ALL ".join(
                f"SELECT '{t}' FROM (SELECT 1 FROM \"{t}\" LIMIT 1) AS any_row"
                for t in self.tables))).scalars())
            for table in self.tables:
                if table in written:
                    conn.execute(text(f'DELETE FROM "{table}"'))
            # Ids start again from 1 (also where a test's inserts were rolled back).
            conn.execute(text(
                "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, "
                "start_value, false) FROM pg_sequences "
                "WHERE schemaname = current_schema() AND last_value IS NOT NULL"))

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture(scope="session")
def database(services: Services) -> Iterator[DatabaseCleaner]:
    """This process's database with the real migrations applied, once."""
    services.instance.mkdir(parents=True, exist_ok=True)
    app = create_app(services_config(services))
    with app.app_context():
        upgrade()  # the real migrations, on the real backend
        db.engine.dispose()
    cleaner = DatabaseCleaner(services.database.url)
    yield cleaner
    cleaner.close()
