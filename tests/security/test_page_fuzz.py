"""RELIABILITY 24 and 28: Hypothesis fuzzes the query string of every page and the form of
every page that takes a POST; no input may produce a 5xx.

The JSON API is fuzzed from its OpenAPI document (test_openapi_fuzz.py); this covers what
that document does not describe: the server-rendered pages and their forms. Every route of
the app is taken from its URL map (a new page is fuzzed without being listed here), signed in
as a customer who owns a payment, a receipt, a refund note and a saved card (admin pages as an
admin), with a valid CSRF token so forms reach their parsing. Path parts are the real ids or
fuzzed text; values mix text (NUL and other controls included), huge and negative numbers,
dates from year 1 to 9999 and cursors that decode to anything.

Fixed seed (derandomize) and bounded: EXAMPLES per route and method, so a run takes tens of
seconds and a failure is the same on every machine.
"""

from __future__ import annotations

import base64
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from tests.security.flows import buy_and_refund

EXAMPLES = 20
# The parameter names the pages read (and a few they do not).
FIELD_NAMES = ["page", "status", "cursor", "before", "after", "from", "to", "q", "limit",
               "next", "payment", "payment_intent", "setup_intent", "saved", "quantity",
               "product_id", "action", "amount", "reason", "confirm", "form_key", "email",
               "password", "name", "confirm", "items", "id", "payment_method_id"]
# Routes not fuzzed, with why.
SKIPPED = {"static": "files from disk, no parameters"}

# Text that survives UTF-8 encoding (a query string or form cannot carry a lone surrogate).
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


def _cursor(moment: datetime, ident: int) -> str:
    return base64.urlsafe_b64encode(f"{moment.isoformat()}|{ident}".encode()).decode()


VALUES = st.one_of(
    TEXT,
    st.builds(lambda a, b: f"{a}\x00{b}", TEXT, TEXT),
    st.integers().map(str),
    st.integers(min_value=2**31 - 2, max_value=2**70).map(str),
    st.sampled_from(["²", "١٢", "1e3", "0x10", "-0", " 7 ", "1.5", "", "\x00", "%00",
                     "\r\nX-Injected: 1", "../../etc/passwd", "javascript:alert(1)"]),
    st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)).map(str),
    st.builds(_cursor, st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                                    timezones=st.timezones()),
              st.integers(min_value=-(2**70), max_value=2**70)),
    st.binary(max_size=30).map(lambda b: base64.urlsafe_b64encode(b).decode()),
)
FIELDS = st.dictionaries(st.sampled_from(FIELD_NAMES) | TEXT.filter(bool), VALUES, max_size=6)


def page_routes(app: Any) -> list[tuple[str, str, str]]:
    """(rule, method, endpoint) for every route outside /api; signing out comes last."""
    routes = sorted((rule.rule, method, rule.endpoint) for rule in app.url_map.iter_rules()
                    if not rule.rule.startswith("/api/") and rule.endpoint not in SKIPPED
                    for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}))
    return sorted(routes, key=lambda r: r[2] == "site.logout")


@pytest.fixture
def signed_in(app, client, customer, admin, product, api_token, run_jobs, emulator,
              login_as):
    """A customer with one of everything, and an admin; the limits out of the way."""
    for limit in ("PAYMENT_LIMIT", "REFUND_LIMIT", "LOGIN_LIMIT_PER_IP",
                  "LOGIN_LIMIT_PER_ACCOUNT"):
        app.config[limit] = "100000 per minute"
    owned = buy_and_refund(client, emulator.url, customer, admin, product, api_token, run_jobs)
    real = {"payment_id": owned.payment_id, "public_id": owned.payment_id,
            "pm_id": owned.card_id, "number": owned.receipt_number, "email_id": "1",
            "event_id": "evt_1"}
    return {"customer": login_as(customer), "admin": login_as(admin), "real": real}


def _path(rule: str, parts: dict[str, str]) -> str:
    path = rule
    for name, value in parts.items():
        for converter in (f"<{name}>", f"<id:{name}>", f"<int:{name}>"):
            path = path.replace(converter, quote(value, safe=""))
    return path


def test_every_page_route_is_fuzzed(app):
    """The route list comes from the app: every page and form is in it."""
    endpoints = {endpoint for _, _, endpoint in page_routes(app)}
    assert {"site.catalog", "site.login", "site.register", "site.cart_add",
            "admin.refund", "admin.retry_email", "site.download_receipt"} <= endpoints


def fuzz_route(rule: str, method: str, endpoint: str, browser: Any,
               real: dict[str, str]) -> None:
    """EXAMPLES requests to one route: fuzzed fields, path parts real or fuzzed."""
    names = [part.split(":")[-1].strip("<>").split(">")[0] for part in rule.split("/")
             if part.startswith("<")]

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(fields=FIELDS, fuzzed_path=st.dictionaries(
        st.sampled_from(names or ["none"]), TEXT | VALUES, max_size=len(names)))
    def probe(fields: dict[str, str], fuzzed_path: dict[str, str]) -> None:
        path = _path(rule, {name: fuzzed_path.get(name, real.get(name, "x"))
                            for name in names})
        if method == "GET":
            response = browser.client.get(path, query_string=fields)
        else:
            response = browser.client.post(
                path, data={**fields, "csrf_token": browser.csrf_token})
        note(f"{method} {path} {fields!r} → {response.status_code}")
        assert response.status_code < 500, (endpoint, method, path, fields,
                                            response.get_data(as_text=True)[:300])

    probe()


def test_no_page_query_or_form_gives_a_5xx(app, signed_in):
    """RELIABILITY 24 and 28: every page's query string and every form, fuzzed; no 5xx."""
    for rule, method, endpoint in page_routes(app):
        browser = signed_in["admin" if rule.startswith("/admin") else "customer"]
        fuzz_route(rule, method, endpoint, browser, signed_in["real"])
