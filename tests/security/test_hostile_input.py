"""RELIABILITY 28 and 32: every hostile shape an outside probe sent gets a clear 4xx (never a
5xx, never a skipped rate limit), and the logs of the whole run hold no secret, hash or card
number in any encoding and no forged line.

Each case is one request as the probe sent it, run on the suite's database (PostgreSQL by
default, where NUL bytes and 32-bit ids are refused by the server itself).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from payments_site.blueprints.parsing import (
    MAX_JSON_DEPTH,
    json_too_deep,
    refuse_hostile_input,
    storable,
)
from payments_site.devtools.stack import WebProcess, app_environment
from payments_site.errors import DomainError
from payments_site.extensions import db
from payments_site.logging_filters import escape_controls, redact
from payments_site.models import Payment, User, WebhookEvent
from payments_site.ratelimits import account_ip_key, account_key, login_ip_key, user_key
from tests.conftest import (
    DEFAULT_PASSWORD,
    SECRET_KEY_FOR_TESTS,
    STRIPE_TEST_PUBLISHABLE_KEY,
    STRIPE_TEST_SECRET_KEY,
    WEBHOOK_SECRET,
    csrf_token_from,
)
from tests.helpers import card_numbers, sign_payload

HUGE = "99999999999999999999"


def nested(key: str, depth: int = 2000) -> str:
    return f'{{"{key}": {"[" * depth}{"]" * depth}, "password": "x"}}'


def cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@dataclass
class Probe:
    """One hostile request: who sends it (anonymous, a customer's Bearer token, a signed-in
    customer's or admin's browser), what it sends and the answer it must get."""

    name: str
    method: str
    path: str
    status: int
    param: str | None = None
    who: str = "anonymous"
    options: dict[str, Any] = field(default_factory=dict)


def _signed(body: str) -> dict[str, Any]:
    payload = body.encode()
    return {"data": payload, "content_type": "application/json",
            "headers": {"Stripe-Signature": sign_payload(payload, WEBHOOK_SECRET)}}


PROBES = [
    # Deep JSON: refused before the limiter's key function or any parser reads it.
    Probe("deep JSON, token", "POST", "/api/auth/token", 400,
          options={"data": nested("email"), "content_type": "application/json"}),
    Probe("deep JSON, process", "POST", "/api/payments/process", 400, who="bearer",
          options={"data": nested("items"), "content_type": "application/json"}),
    Probe("deep JSON, signed webhook", "POST", "/api/webhooks/stripe", 400,
          options=_signed(nested("data"))),
    # Numbers out of range.
    Probe("product_id 2^64", "POST", "/api/payments/process", 400, "items[0].product_id",
          who="bearer", options={"json": {"items": [{"product_id": 2**64, "quantity": 1}]}}),
    Probe("product_id 2^31", "POST", "/api/payments/process", 400, "items[0].product_id",
          who="bearer", options={"json": {"items": [{"product_id": 2**31, "quantity": 1}]}}),
    Probe("limit ²", "GET", "/api/payments/history?limit=%C2%B2", 400, "limit", who="bearer"),
    Probe("cursor at year 1", "GET",
          "/api/payments/history?cursor=" + cursor("0001-01-01T00:00:00+05:00|1"), 400,
          "cursor", who="bearer"),
    Probe("cursor at year 9999", "GET",
          "/api/payments/history?cursor=" + cursor("9999-12-31T23:59:59-05:00|1"), 400,
          "cursor", who="bearer"),
    Probe("cursor id 2^70", "GET",
          "/api/payments/history?cursor=" + cursor(f"2026-01-01T00:00:00+00:00|{2**70}"),
          400, "cursor", who="bearer"),
    Probe("history page cursor at year 1", "GET",
          "/account/payments?cursor=" + cursor("0001-01-01T00:00:00+00:00|1"), 400,
          who="customer"),
    # A page number from a link past any page reads as the first page.
    Probe("receipts page 10^20", "GET", f"/account/receipts?page={HUGE}", 200,
          who="customer"),
    Probe("webhook log before 10^20", "GET", f"/admin/webhooks?before={HUGE}", 200,
          who="admin"),
    Probe("admin payments from year 1 to 9999", "GET",
          "/admin/payments?from=0001-01-01&to=9999-12-31", 400, who="admin"),
    Probe("admin payments after a cursor at year 1", "GET",
          "/admin/payments?after=" + cursor(f"0001-01-01T00:00:00+00:00|{2**70}"), 400,
          who="admin"),
    Probe("retry email 10^20", "POST", f"/admin/emails/{HUGE}/retry", 404, who="admin"),
    Probe("retry email 2^31", "POST", f"/admin/emails/{2**31}/retry", 404, who="admin"),
    # NUL bytes where a database string goes.
    Probe("NUL in a payment id", "GET", "/api/payments/pay_%00x", 404, who="bearer"),
    Probe("NUL in a receipt number", "GET", "/receipts/2026-%00.pdf", 404, who="customer"),
    Probe("NUL in payment_method_id", "POST", "/api/payments/process", 400,
          "payment_method_id", who="bearer",
          options={"json": {"items": [{"product_id": 1, "quantity": 1}],
                            "payment_method_id": "pm_\u0000x"}}),
    Probe("unpaired surrogate in a token request", "POST", "/api/auth/token", 400, "email",
          options={"data": '{"email": "a\\ud800@example.com", "password": "x"}',
                   "content_type": "application/json"}),
    Probe("NUL in a query", "GET", "/account/payments?status=paid%00", 400, who="customer"),
    Probe("NUL in a signed webhook", "POST", "/api/webhooks/stripe", 400, "id",
          options=_signed('{"id": "evt_\\u0000", "type": "payment_intent.succeeded"}')),
]


@pytest.fixture
def callers(app, client, make_user, admin, product, api_token, login_as):
    """Who sends the probes; the limits raised so only the guard answers."""
    for limit in ("PAYMENT_LIMIT", "REFUND_LIMIT", "LOGIN_LIMIT_PER_IP",
                  "LOGIN_LIMIT_PER_ACCOUNT"):
        app.config[limit] = "100000 per minute"
    customer = make_user("prober@example.com")
    browser = login_as(customer)
    bearer = {"Authorization": f"Bearer {api_token(customer)}"}
    admin_browser = login_as(admin)

    def send(probe: Probe) -> Any:
        options = dict(probe.options)
        if probe.who == "bearer":
            options["headers"] = {**options.get("headers", {}), **bearer}
            return client.open(probe.path, method=probe.method, **options)
        if probe.who == "anonymous":
            return app.test_client().open(probe.path, method=probe.method, **options)
        session = browser if probe.who == "customer" else admin_browser
        if probe.method == "POST":
            options.setdefault("data", {"csrf_token": session.csrf_token})
        return session.client.open(probe.path, method=probe.method, **options)

    return send


def _check(probe: Probe, response: Any) -> None:
    assert response.status_code == probe.status, (probe.name, response.status_code,
                                                  response.get_data(as_text=True)[:300])
    if response.is_json and probe.status >= 400:
        error = response.get_json()["error"]
        assert error["code"] == {400: "invalid_request", 404: "not_found"}[probe.status]
        assert error.get("param") == probe.param, (probe.name, error)


@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
def test_hostile_input_gets_a_clear_4xx(callers, probe):
    """RELIABILITY 28: each shape the probe sent gets its 4xx (or the page), never a 5xx."""
    _check(probe, callers(probe))


def test_a_refused_payment_leaves_nothing_behind(callers, product):
    """RELIABILITY 28: a NUL in the card id is refused before any payment row is made."""
    response = callers(Probe("", "POST", "/api/payments/process", 400, who="bearer", options={
        "json": {"items": [{"product_id": product.id, "quantity": 1}],
                 "payment_method_id": "pm_\u0000x"}}))
    assert response.status_code == 400
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 0


def test_a_registration_with_a_nul_is_refused_and_creates_nobody(app):
    """RELIABILITY 28: a NUL in the name → the form's 400, no account, no 500."""
    browser = app.test_client()
    page = browser.get("/auth/register")
    response = browser.post("/auth/register", data={
        "email": "nul@example.com", "name": "Mallory\x00Tables", "password": DEFAULT_PASSWORD,
        "confirm": DEFAULT_PASSWORD, "csrf_token": csrf_token_from(page.get_data(as_text=True))})
    assert response.status_code == 400
    assert "not allowed" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_a_deep_or_nul_webhook_stores_nothing(callers):
    """RELIABILITY 28 and 1: signed but unreadable events are refused and nothing is stored."""
    for probe in PROBES:
        if probe.path == "/api/webhooks/stripe":
            assert callers(probe).status_code == 400
    assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 0


def test_deep_json_is_refused_before_the_rate_limiter(app, client):
    """RELIABILITY 28: the per-account limiter's key function never meets deep JSON (it would
    raise, and Flask-Limiter would skip every limit), and the login limits still count: after
    the refused requests, normal tries are throttled as before."""
    app.config["LOGIN_LIMIT_PER_IP"] = "3 per minute"
    for _ in range(5):
        response = client.post("/api/auth/token", data=nested("email"),
                               content_type="application/json")
        assert response.status_code == 400
    statuses = [client.post("/api/auth/token", json={"email": "a@example.com",
                                                     "password": "wrong-password-1"}
                            ).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                               max_size=3),
    max_leaves=12)
BODIES = st.one_of(
    st.builds(json.dumps, st.fixed_dictionaries({"email": JSON_VALUES},
                                                optional={"password": JSON_VALUES})),
    st.builds(lambda n, inner: '{"email": ' + "[" * n + inner + "]" * n + "}",
              st.integers(min_value=0, max_value=3000), st.sampled_from(["", '"a"', "{}"])),
    st.binary(max_size=120),
    st.text(max_size=120).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(body=BODIES, content_type=st.sampled_from(
    ["application/json", "application/x-www-form-urlencoded", "text/plain"]))
def test_the_limiters_key_functions_never_raise(app, body, content_type):
    """RELIABILITY 28: for any body the edge guard lets through, the login limiter's key
    functions answer a key (a raise would make Flask-Limiter skip every limit)."""
    with app.test_request_context("/api/auth/token", method="POST", data=body,
                                  content_type=content_type):
        try:
            refuse_hostile_input()
        except DomainError:
            return
        for key in (account_key, account_ip_key, login_ip_key, user_key):
            assert isinstance(key(), str), key


def test_json_at_the_depth_limit_still_reaches_the_route(client):
    """The limit is on nesting only: a body exactly MAX_JSON_DEPTH deep is read by the route
    (a 401 for bad credentials, not the guard's 400)."""
    inside = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    body = f'{{"email": {inside}, "password": "x"}}'
    assert not json_too_deep(body.encode())
    assert json_too_deep(f'{{"email": [{inside}]}}'.encode())
    assert client.post("/api/auth/token", data=body,
                       content_type="application/json").status_code == 401


def test_the_depth_scan_ignores_brackets_inside_strings():
    text = '{"name": "' + "[" * 100 + '", "quote": "a \\" [[[[", "n": [[1]]}'
    assert not json_too_deep(text.encode())
    assert json_too_deep(b"[" * 33 + b"]" * 33)
    assert not storable("a\x00b") and not storable("\ud800") and storable("plain ü €")


def test_every_integer_in_a_path_is_bounded(app):
    """Every route's integer path parts are `<id:…>` (1..2^31-1): a larger one is a 404."""
    from werkzeug.routing import IntegerConverter

    from payments_site.models import ID_MAX

    converters = [(rule.rule, c) for rule in app.url_map.iter_rules()
                  for c in rule._converters.values() if isinstance(c, IntegerConverter)]
    assert converters, "no route takes an integer"
    for rule, converter in converters:
        assert converter.min == 1 and converter.max == ID_MAX, rule


# --- the logs of the whole run ----------------------------------------------------------------

_SECRETS = re.compile(r"password_hash|scrypt:|pbkdf2:|sk_test_|sk_live_|whsec_")


def log_findings(records: list[logging.LogRecord], text: str) -> list[str]:
    """What must never be in a log: a hash, a secret, a card number in any encoding, a
    message on more than one line."""
    problems = [f"secret-looking {m.group(0)!r}" for m in _SECRETS.finditer(text)]
    decoded = requests.utils.unquote(text.replace("+", " "))
    problems += [f"card number {n[:6]}…" for n in card_numbers(decoded)]
    problems += [f"card number {n[:6]}…" for n in card_numbers(re.sub(r"[._]", " ", decoded))]
    problems += [f"raw line break in {r.name}: {r.getMessage()[:80]!r}" for r in records
                 if re.search(r"[\r\n\u2028\u2029\x85]", r.getMessage())]
    problems += [f"{r.levelname} from {r.name}: {r.getMessage()[:120]}" for r in records
                 if r.levelno >= logging.ERROR]
    return problems


def test_the_log_scan_finds_what_it_must():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "a\nb", None, None)
    assert log_findings([record], "password_hash=scrypt:32768$x card 4242%204242%204242%204242")
    assert log_findings([], "4242.4242.4242.4242") and log_findings([], "4242_4242_4242_4242")
    assert log_findings([], "payment pay_abc 1999 usd 2026-12-07T06:00:00Z") == []


def test_log_messages_are_one_line_and_masked(caplog):
    """RELIABILITY 32: a path with CR/LF cannot forge a line; cards are masked however they
    are written (URL-encoded, spaced, dotted)."""
    caplog.set_level(logging.INFO)
    logging.getLogger("payments_site.probe").info(
        "GET %s", "/x\r\n2026-12-07 06:00:00 INFO payments_site: admin logged in")
    assert "\n" not in caplog.records[-1].getMessage()
    assert caplog.records[-1].getMessage().startswith("GET /x\\r\\n2026")
    for written in ("4242%204242%204242%204242", "4242%2D4242%2d4242%2D4242",
                    "4242.4242.4242.4242", "4242+4242+4242+4242", "4242 4242 4242 4242",
                    "=%204242%204242%204242%204242"):
        assert "4242" not in redact(f"GET /?card={written} HTTP/1.1"), written
    assert escape_controls("a\x1b[31mb\x00") == "a\\x1b[31mb\\x00"
    assert redact("took 1733550000.123456 s") == "took 1733550000.123456 s"


def test_failed_statements_never_log_their_parameters(app, make_user):
    """RELIABILITY 32: SQLAlchemy hides bound values (hide_parameters) in errors and logs,
    so a failed INSERT of a user never shows its password hash."""
    user = make_user("twice@example.com")
    assert db.engine.hide_parameters is True
    db.session.add(User(email=user.email, name="Twin", password_hash=user.password_hash))
    with pytest.raises(Exception) as failure:
        db.session.commit()
    db.session.rollback()
    assert "hidden due to hide_parameters" in str(failure.value)
    assert user.password_hash not in str(failure.value)
    assert "scrypt:" not in str(failure.value)


def test_the_whole_hostile_run_leaves_clean_logs(app, callers, live_server, caplog):
    """RELIABILITY 32 and 23: every probe above, plus card numbers and CR/LF sent over real
    HTTP (the server's access log), with every logger at DEBUG: no password hash, secret key,
    webhook secret or card number in any encoding, no forged line, no error."""
    caplog.set_level(logging.DEBUG)
    for noisy in ("sqlalchemy", "urllib3", "faker", "hypothesis"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for probe in PROBES:
        _check(probe, callers(probe))
    for query in ("card=4242%204242%204242%204242", "card=4242%2D4242%2D4242%2D4242",
                  "card=4242.4242.4242.4242", "card=4242+4242+4242+4242",
                  "card=5555_5555_5555_4444"):
        assert requests.get(f"{live_server.url}/?{query}", timeout=10).status_code == 200
    response = requests.get(f"{live_server.url}/nothing%0d%0a2026-12-07%20INFO%20forged",
                            timeout=10)
    assert response.status_code == 404
    assert any("card=[card]" in r.getMessage() for r in caplog.records), \
        "the access log was not captured"
    assert log_findings(caplog.records, caplog.text) == []


def test_the_servers_access_log_masks_card_numbers_and_escapes_paths(services, tmp_path):
    """RELIABILITY 32: `gunicorn wsgi:app` with the shipped gunicorn.conf.py and its access log
    on: a card number in a query string, however encoded, is masked there, and a path with
    %0d%0a stays on its line."""
    env = app_environment(
        database=services.database, redis_db=services.redis, emulator=services.emulator,
        mail=services.mail, instance=tmp_path / "instance",
        stripe_secret_key=STRIPE_TEST_SECRET_KEY,
        stripe_publishable_key=STRIPE_TEST_PUBLISHABLE_KEY, webhook_secret=WEBHOOK_SECRET,
        SECRET_KEY=SECRET_KEY_FOR_TESTS, APP_ENV="development")
    access_log = tmp_path / "access.log"
    web = WebProcess.gunicorn("web", "wsgi:app", env, tmp_path / "web.log", settings={
        "GUNICORN_ACCESS_LOG": str(access_log), "WEB_CONCURRENCY": "1"}).start()
    try:
        for query in ("card=4242%204242%204242%204242", "card=4242%2D4242%2D4242%2D4242",
                      "card=4242.4242.4242.4242", "card=4242+4242+4242+4242"):
            assert requests.get(f"{web.url}/healthz?{query}", timeout=10).status_code == 200
        requests.get(f"{web.url}/nothing%0d%0a2026-12-07%20INFO%20forged", timeout=10)
    finally:
        web.stop()
    lines = access_log.read_text().splitlines()
    assert sum("/healthz?card=[card]" in line for line in lines) == 4, lines
    assert all(line.split(" ", 1)[0] == "127.0.0.1" for line in lines), lines
    assert card_numbers(requests.utils.unquote(access_log.read_text().replace("+", " "))) == []
