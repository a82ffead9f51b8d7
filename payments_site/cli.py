"""`flask` commands: users, products, seed, worker, payments reconcile, webhooks replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from payments_site.errors import InvalidRequest, NotFound
from payments_site.extensions import db
from payments_site.models import Product, User
from payments_site.services import sweeper, webhooks
from payments_site.services.accounts import create_user
from payments_site.services.catalog import create_product
from payments_site.worker import run_worker_processes

users_cli = AppGroup("users", help="Manage user accounts.")
products_cli = AppGroup("products", help="Manage the catalog.")
payments_cli = AppGroup("payments", help="Payments maintenance.")
webhooks_cli = AppGroup("webhooks", help="The webhook inbox.")

DEMO_CUSTOMER = ("customer@example.com", "customer-password", "Demo Customer")
DEMO_ADMIN = ("admin@example.com", "admin-password", "Demo Admin")
DEMO_PRODUCTS = [
    ("Espresso beans, 1 kg", 2450, "usd", "Single-origin, roasted this week."),
    ("Pour-over kettle", 5900, "usd", "Gooseneck, 1 litre."),
    ("Ceramic mug", 1999, "usd", "Hand-glazed, 350 ml."),
    ("Matcha tin", 3200, "eur", "Ceremonial grade, 40 g."),
    ("Sencha tea, 100 g", 1500, "jpy", "From Shizuoka. Priced in yen."),
]


@users_cli.command("create")
@click.argument("email")
@click.option("--password", required=True,
              help="At least 10 characters and hard to guess (zxcvbn score 3 or more).")
@click.option("--admin", is_flag=True, help="Give the admin role.")
@click.option("--name", default="", help="Full name shown on receipts.")
def create_user_command(email: str, password: str, admin: bool, name: str) -> None:
    """Create a user and print its id."""
    try:
        # The operator vouches for the address; the password must still be a strong one.
        user = create_user(email, password, name=name, role="admin" if admin else "customer",
                           verified=True)
    except InvalidRequest as error:
        raise click.ClickException(error.message) from error
    click.echo(user.id)


@products_cli.command("create")
@click.option("--name", required=True)
@click.option("--amount", required=True, type=int, help="Price in minor units (cents; yen).")
@click.option("--currency", required=True, help="ISO code, e.g. usd, eur, jpy.")
@click.option("--description", default="")
def create_product_command(name: str, amount: int, currency: str, description: str) -> None:
    """Create a catalog product and print its id."""
    try:
        product = create_product(name, amount, currency, description)
    except InvalidRequest as error:
        raise click.ClickException(error.message) from error
    click.echo(product.id)


@click.command("seed")
def seed_command() -> None:
    """Demo catalog, a demo customer and a demo admin (idempotent; refused in production)."""
    if current_app.config["PRODUCTION"]:
        raise click.ClickException("flask seed is for development only")
    for (email, password, name), role in ((DEMO_CUSTOMER, "customer"), (DEMO_ADMIN, "admin")):
        if db.session.scalar(select(User).where(User.email == email)) is None:
            # Demo logins keep their printed passwords (strength is checked when a person
            # sets one) and their addresses count as confirmed.
            create_user(email, password, name=name, role=role, enforce_strength=False,
                        verified=True)
    for name, amount, currency, description in DEMO_PRODUCTS:
        if db.session.scalar(select(Product).where(Product.name == name)) is None:
            db.session.add(Product(name=name, unit_amount=amount, currency=currency,
                                   description=description))
    db.session.commit()
    click.echo(f"customer: {DEMO_CUSTOMER[0]} / {DEMO_CUSTOMER[1]}")
    click.echo(f"admin:    {DEMO_ADMIN[0]} / {DEMO_ADMIN[1]}")


@click.command("worker")
@click.option("--burst", is_flag=True, help="Process what is queued, then exit.")
@click.option("--queues", default="", help="Comma-separated subset of the queues.")
@click.option("--processes", type=click.IntRange(min=1), default=None,
              help="Worker processes side by side, each running one job at a time "
                   "(default: WORKER_PROCESSES, else 16).")
def worker_command(burst: bool, queues: str, processes: int | None) -> None:
    """Run RQ workers for all queues with the app context."""
    names = [q.strip() for q in queues.split(",") if q.strip()] or None
    count = processes if processes is not None else current_app.config["WORKER_PROCESSES"]
    run_worker_processes(count, names, burst=burst)


@webhooks_cli.command("retry-failed")
@click.option("--inline", is_flag=True,
              help="Process the events in this process instead of queueing them (no worker "
                   "or Redis needed).")
def webhooks_retry_failed_command(inline: bool) -> None:
    """Re-process now every pending or failed webhook event (even past its last attempt)."""
    if not inline:
        click.echo(f"queued {sweeper.sweep_webhook_events(everything=True)} event(s)")
        return
    outcomes: dict[str, int] = {}
    for event_id in sweeper.due_webhook_events(everything=True):
        outcome = webhooks.process_event(event_id)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    click.echo(", ".join(f"{n} {status}" for status, n in sorted(outcomes.items()))
               or "nothing to retry")


@webhooks_cli.command("replay")
@click.argument("event_id")
def webhooks_replay_command(event_id: str) -> None:
    """Re-process one stored event (by Stripe event id, evt_…) now and print the outcome."""
    try:
        event = webhooks.replay_event(event_id, actor=None)
    except NotFound as error:
        raise click.ClickException(f"no stored webhook event {event_id}") from error
    click.echo(f"{event.stripe_event_id} {event.type}: {event.status} "
               f"(attempts: {event.attempts})")
    if event.last_error:
        click.echo(f"error: {event.last_error}")
    if event.status == "failed":
        raise SystemExit(1)


@payments_cli.command("reconcile")
@click.option("--since", default=None, help="ISO date or datetime (UTC); default: 7 days ago.")
def payments_reconcile_command(since: str | None) -> None:
    """Re-read recent payments and their refunds from Stripe and fix what differs."""
    if since is None:
        start = datetime.now(UTC) - timedelta(days=7)
    else:
        try:
            start = datetime.fromisoformat(since)
        except ValueError as error:
            raise click.BadParameter("use an ISO date such as 2026-01-31",
                                     param_hint="--since") from error
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
    report = sweeper.reconcile_payments(start, on_change=click.echo)
    click.echo(f"checked {report.checked} payment(s) since {start.isoformat()}: "
               f"{report.changed} changed, {report.errors} error(s)")
    if report.errors:
        raise SystemExit(1)


def register_commands(app: Flask) -> None:
    for command in (users_cli, products_cli, payments_cli, webhooks_cli, seed_command,
                    worker_command):
        app.cli.add_command(command)
