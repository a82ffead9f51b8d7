"""`flask` commands: users, products, seed, worker, payments reconcile, webhooks replay."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from payments_site.errors import InvalidRequest
from payments_site.extensions import db
from payments_site.models import Product, User

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
@click.option("--password", required=True, help="At least 10 characters.")
@click.option("--admin", is_flag=True, help="Give the admin role.")
@click.option("--name", default="", help="Full name shown on receipts.")
def create_user_command(email: str, password: str, admin: bool, name: str) -> None:
    """Create a user and print its id."""
    from payments_site.services.accounts import create_user

    try:
        user = create_user(email, password, name=name, role="admin" if admin else "customer")
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
    from payments_site.services.catalog import create_product

    try:
        product = create_product(name, amount, currency, description)
    except InvalidRequest as error:
        raise click.ClickException(error.message) from error
    click.echo(product.id)


@click.command("seed")
def seed_command() -> None:
    """Demo catalog, a demo customer and a demo admin (idempotent; refused in production)."""
    from payments_site.services.accounts import create_user

    if current_app.config["PRODUCTION"]:
        raise click.ClickException("flask seed is for development only")
    for (email, password, name), role in ((DEMO_CUSTOMER, "customer"), (DEMO_ADMIN, "admin")):
        if db.session.scalar(select(User).where(User.email == email)) is None:
            create_user(email, password, name=name, role=role)
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
def worker_command(burst: bool, queues: str) -> None:
    """Run an RQ worker for all queues with the app context."""
    from payments_site.worker import run_worker

    names = [q.strip() for q in queues.split(",") if q.strip()] or None
    run_worker(names, burst=burst)


def register_commands(app: Flask) -> None:
    for command in (users_cli, products_cli, payments_cli, webhooks_cli, seed_command,
                    worker_command):
        app.cli.add_command(command)
