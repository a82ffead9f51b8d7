"""The catalog: the public page, GET /api/products, and the CLI that fills it."""

from __future__ import annotations

from sqlalchemy import func, select

from payments_site.extensions import db
from payments_site.models import Product, User


def test_catalog_page_lists_products_with_formatted_prices(client, app):
    from payments_site.services.catalog import create_product

    create_product("Ceramic mug", 1999, "usd")
    create_product("Sencha tea", 1500, "jpy")
    page = client.get("/").get_data(as_text=True)
    assert "Ceramic mug" in page and "$19.99" in page
    assert "Sencha tea" in page and "¥1,500" in page


def test_api_products(client, product):
    response = client.get("/api/products")
    assert response.status_code == 200
    assert response.get_json()["data"] == [{
        "id": product.id, "name": "Ceramic mug", "description": "", "unit_amount": 1999,
        "currency": "usd"}]


def test_inactive_products_are_hidden(client, product):
    product.active = False
    db.session.commit()
    assert client.get("/api/products").get_json()["data"] == []


def test_cli_users_create(runner):
    result = runner.invoke(args=["users", "create", "cli@example.com", "--password",
                                 "a-long-password", "--admin", "--name", "Cli Admin"])
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.email == "cli@example.com"))
    assert user is not None and user.role == "admin" and user.name == "Cli Admin"
    assert result.output.strip() == str(user.id)


def test_cli_users_create_rejects_duplicates_and_weak_passwords(runner, customer):
    duplicate = runner.invoke(args=["users", "create", customer.email, "--password",
                                    "a-long-password"])
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output
    weak = runner.invoke(args=["users", "create", "weak@example.com", "--password", "123"])
    assert weak.exit_code != 0 and "at least 10" in weak.output


def test_cli_products_create(runner):
    result = runner.invoke(args=["products", "create", "--name", "Kettle", "--amount", "5900",
                                 "--currency", "EUR"])
    assert result.exit_code == 0, result.output
    product = db.session.get(Product, int(result.output.strip()))
    assert (product.unit_amount, product.currency) == (5900, "eur")


def test_cli_products_create_rejects_bad_input(runner):
    for args in (["--amount", "0", "--currency", "usd"], ["--amount", "-5", "--currency", "usd"],
                 ["--amount", "100", "--currency", "xyz"]):
        result = runner.invoke(args=["products", "create", "--name", "Bad", *args])
        assert result.exit_code != 0
    notint = runner.invoke(args=["products", "create", "--name", "Bad", "--amount", "1.5",
                                 "--currency", "usd"])
    assert notint.exit_code != 0
    assert db.session.scalar(select(func.count()).select_from(Product)) == 0


def test_seed_is_idempotent(runner):
    first = runner.invoke(args=["seed"])
    second = runner.invoke(args=["seed"])
    assert first.exit_code == second.exit_code == 0
    assert "customer@example.com" in first.output
    users = db.session.scalar(select(func.count()).select_from(User))
    products = db.session.scalar(select(func.count()).select_from(Product))
    runner.invoke(args=["seed"])
    assert db.session.scalar(select(func.count()).select_from(User)) == users == 2
    assert db.session.scalar(select(func.count()).select_from(Product)) == products >= 3


def test_public_ids_are_opaque(app, customer, product):
    from payments_site.models import Payment

    ids = set()
    for _ in range(50):
        payment = Payment(user_id=customer.id, amount=100, currency="usd", cart_hash="x")
        db.session.add(payment)
        db.session.flush()
        ids.add(payment.public_id)
    db.session.rollback()
    assert len(ids) == 50
    assert all(i.startswith("pay_") and len(i) == 28 for i in ids)


def test_seeded_demo_users_are_confirmed_and_log_in_with_the_printed_passwords(app, runner):
    """`make dev` prints these logins: strength is judged when a person sets a password, not
    at login, so the demo passwords keep working; their addresses count as confirmed."""
    from payments_site.cli import DEMO_ADMIN, DEMO_CUSTOMER
    from tests.conftest import login

    assert runner.invoke(args=["seed"]).exit_code == 0
    for email, password, _name in (DEMO_CUSTOMER, DEMO_ADMIN):
        user = db.session.scalar(select(User).where(User.email == email))
        assert user is not None and user.email_verified
        assert login(app.test_client(), email, password).status_code == 302


def test_users_create_judges_the_password_with_the_address_as_context(runner):
    weak = runner.invoke(args=["users", "create", "rosalind@example.com", "--password",
                               "rosalind@example.com"])
    assert weak.exit_code != 0 and "too easy to guess" in weak.output
    made = runner.invoke(args=["users", "create", "rosalind@example.com", "--password",
                               "velvet-otter-harbour-92"])
    assert made.exit_code == 0
    user = db.session.scalar(select(User).where(User.email == "rosalind@example.com"))
    assert user is not None and user.email_verified  # the operator vouches for the address
