"""The real services of one pytest process: database, Redis, Stripe emulator and SMTP sink.

Every pytest process (each pytest-xdist worker, or the one process of a plain run) starts its
own from `payments_site.devtools.stack`: a fresh PostgreSQL database (a SQLite file when
PostgreSQL does not answer), a Redis database number of its own (an embedded Redis when no
server answers), a Stripe emulator and an SMTP sink on ports of their own. On CI (`CI=true`)
PostgreSQL and Redis are required, and started when installed but down.

`TEST_DATABASE_URL` and `TEST_REDIS_URL` name the database and Redis to use instead (each
xdist worker then takes a file, database or number next to the one named); `TEST_POSTGRES_URL`
names the PostgreSQL server (and the database to connect to) for creating test databases.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from payments_site.devtools.smtp_sink import MailSink
from payments_site.devtools.stack import (
    LOOPBACK_ANY_PORT,
    POSTGRES_ADMIN_URL,
    ROOT,
    Database,
    RedisDatabase,
    Stack,
    StripeEmulator,
)
from tests.harness.config import STRIPE_TEST_SECRET_KEY

CONTRACT_SCHEMAS = ROOT / "tests" / "contract" / "schemas"


def output_dir() -> Path:
    """Where test artefacts (logs, screenshots) go: `$TEST_OUTPUT_DIR` or `test-results/`."""
    return Path(os.environ.get("TEST_OUTPUT_DIR", ROOT / "test-results"))


def postgres_admin_url() -> str:
    """The PostgreSQL server the tests create their databases on."""
    return os.environ.get("TEST_POSTGRES_URL", POSTGRES_ADMIN_URL)


def xdist_worker() -> tuple[str, int]:
    """This process's pytest-xdist worker name and number ("", 0 without xdist)."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return name, int(name[2:]) if name.startswith("gw") else 0


# A test database is dropped at the end of the run: its commits need not wait for the disk
# (the server still runs every statement and every constraint as in production).
THROWAWAY = {"synchronous_commit": "off"}


# --- which database and Redis ------------------------------------------------------------------

def process_database(directory: Path) -> Database:
    """A database for this process: TEST_DATABASE_URL's (one per xdist worker), else fresh."""
    explicit = os.environ.get("TEST_DATABASE_URL", "")
    worker, _ = xdist_worker()
    if not explicit:
        return Database(directory, name_prefix="payments_site_test",
                        admin_url=postgres_admin_url(), settings=THROWAWAY)
    if not worker:
        return Database(directory, url=explicit)
    if explicit.startswith("sqlite:///"):
        path = Path(explicit[len("sqlite:///"):])
        return Database(directory, url=f"sqlite:///{path.with_stem(f'{path.stem}-{worker}')}")
    # One server, a fresh database per worker, named after the one given.
    name = explicit.rsplit("/", 1)[-1].split("?")[0]
    return Database(directory, name_prefix=f"{name}_{worker}", admin_url=explicit,
                    postgres=True, settings=THROWAWAY)


def process_redis(directory: Path) -> RedisDatabase:
    """A Redis for this process: TEST_REDIS_URL's (the next numbers for xdist workers)."""
    explicit = os.environ.get("TEST_REDIS_URL", "")
    _, number = xdist_worker()
    if explicit and number:
        match = re.match(r"^(redis://[^/]+)/(\d+)$", explicit)
        if match is None:
            raise RuntimeError("with pytest-xdist, TEST_REDIS_URL must be redis://host:port/N "
                               "(worker k uses database N+k)")
        explicit = f"{match.group(1)}/{(int(match.group(2)) + number) % 16}"
    return RedisDatabase(directory, url=explicit or None)


# --- the services ------------------------------------------------------------------------------

@dataclass
class Services:
    """What one pytest process runs against."""

    database: Database
    redis: RedisDatabase
    emulator: StripeEmulator
    mail: MailSink
    instance: Path


def contract_failures(report: dict[str, Any], strict_keys: tuple[str, ...] = ()) -> list[str]:
    """The contract violations that fail the suite, one line each.

    Every response and event must match Stripe's schemas. A request that does not match is a
    failure when the emulator accepted it (Stripe would have refused it), or whoever sent it
    when it came with one of `strict_keys` (the app's own API key): tests of the emulator send
    wrong inputs on purpose, and the emulator must refuse those.
    """
    lines = []
    for v in report.get("violations", []):
        if v["kind"] == "request" and v.get("status", 0) >= 400 and \
                not any(k.endswith(v.get("key") or "\0") for k in strict_keys):
            continue
        status = f" → {v['status']}" if "status" in v else ""
        rid = f" ({v['request_id']})" if v.get("request_id") else ""
        lines.append(f"{v['kind']} {v['where']}{status}{rid}:")
        lines.extend(f"    {error}" for error in v["errors"])
    return lines


def read_contract(url: str) -> dict[str, Any]:
    """The contract report of the emulator at `url`, cleared once read."""
    response = requests.get(f"{url}/_config/contract", params={"clear": "true"}, timeout=60)
    response.raise_for_status()
    report: dict[str, Any] = response.json()
    return report


def app_contract_failures(emulator: StripeEmulator) -> list[str]:
    """What broke Stripe's schemas since the last call, the app's own requests included."""
    return contract_failures(emulator.contract_report(), strict_keys=(STRIPE_TEST_SECRET_KEY,))


def contract_message(failures: list[str]) -> str:
    return "Stripe contract violations (tests/contract/schemas):\n" + "\n".join(failures)


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """This process's database, Redis, emulator (checking Stripe's schemas) and SMTP sink."""
    workdir = tmp_path_factory.mktemp("services")
    with Stack() as stack:
        database = stack.add(process_database(workdir / "db"))
        redis_db = stack.add(process_redis(workdir / "redis"))
        emulator = stack.add(StripeEmulator(log_dir=output_dir(), contract=CONTRACT_SCHEMAS,
                                            allowed_origins=[LOOPBACK_ANY_PORT]))
        mail = stack.add(MailSink())
        yield Services(database, redis_db, emulator, mail, workdir / "instance")
        failures = app_contract_failures(emulator)
    if failures:
        pytest.fail(contract_message(failures), pytrace=False)


@pytest.fixture(scope="session")
def database_url(services: Services) -> str:
    return services.database.url


@pytest.fixture(scope="session")
def redis_url(services: Services) -> str:
    return services.redis.url


@pytest.fixture(scope="session")
def emulator_process(services: Services) -> StripeEmulator:
    return services.emulator


@pytest.fixture(scope="session")
def mail_server(services: Services) -> MailSink:
    return services.mail


@pytest.fixture
def emulator(services: Services) -> Iterator[StripeEmulator]:
    """A clean emulator for each test (data, webhooks and faults wiped).

    The emulator checks every request, response and event against Stripe's published schemas
    (tests/contract/); what this test broke fails it at teardown, listed one by one.
    """
    emulator = services.emulator
    emulator.contract_report()  # earlier tests' leftovers belong to them, not here
    emulator.reset()
    yield emulator
    failures = app_contract_failures(emulator)
    if failures:
        pytest.fail(contract_message(failures), pytrace=False)


@pytest.fixture
def mail_sink(mail_server: MailSink) -> MailSink:
    """The real SMTP server the app sends to, emptied for each test."""
    mail_server.clear()
    return mail_server
