"""RELIABILITY 33: the development tools are not reachable from other web origins, and what
the dev stack keeps under instance/ is readable by its owner only.

During `make dev` any web page open in the developer's browser could call the emulator: it
answered every Origin with CORS allowed, /_config/* included (register a webhook, read the
data, wipe it). Now /_config/* answers no other origin (403, no CORS headers) and /v1 allows
only the app's own origin, which the dev stack passes to the emulator.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from payments_site import create_app
from payments_site.devtools.devstack import DevStack
from payments_site.devtools.smtp_sink import MailSink
from payments_site.devtools.stack import StripeEmulator, free_port
from payments_site.extensions import db
from tests.conftest import STRIPE_TEST_PUBLISHABLE_KEY

EVIL = "http://evil.example"


@pytest.fixture
def dev_emulator(monkeypatch, tmp_path) -> Iterator[tuple[StripeEmulator, str]]:
    """The emulator exactly as `make dev` starts it (its own ports, a temporary instance/)."""
    web_port = free_port()
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("DEV_PORT", str(web_port))
    monkeypatch.setenv("DEV_STRIPE_PORT", str(free_port()))
    for name in ("STRIPE_API_BASE", "STRIPE_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    dev = DevStack()
    try:
        dev.start_emulator()
        emulator = next(p for p in dev.stack.parts if isinstance(p, StripeEmulator))
        yield emulator, f"http://127.0.0.1:{web_port}"
    finally:
        dev.stack.stop()


def _cors(response: requests.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control")}


def test_control_routes_refuse_other_origins(dev_emulator):
    """RELIABILITY 33: a page elsewhere cannot register a webhook, read or wipe the data, even
    with a plain form post (no preflight); no CORS header is ever sent on /_config."""
    emulator, app_origin = dev_emulator
    for origin in (EVIL, app_origin, "null"):
        headers = {"Origin": origin}
        posted = requests.post(f"{emulator.url}/_config/webhooks/evil", headers=headers,
                               data={"url": f"{EVIL}/hook", "secret": "whsec_evil"}, timeout=5)
        assert posted.status_code == 403 and _cors(posted) == {}, origin
        for method in ("GET", "DELETE", "OPTIONS"):
            answer = requests.request(method, f"{emulator.url}/_config/webhooks",
                                      headers=headers, timeout=5)
            assert answer.status_code == 403 and _cors(answer) == {}, (origin, method)
        wiped = requests.delete(f"{emulator.url}/_config/data", headers=headers, timeout=5)
        assert wiped.status_code == 403 and _cors(wiped) == {}
    listed = requests.get(f"{emulator.url}/_config/webhooks", timeout=5).json()
    assert [e["url"] for e in listed["endpoints"]] == [f"{app_origin}/api/webhooks/stripe"]


def test_control_routes_still_answer_tools_and_their_own_origin(dev_emulator):
    """Scripts and tests (no Origin) and the emulator's own pages keep working, without CORS."""
    emulator, _ = dev_emulator
    assert requests.get(f"{emulator.url}/_config/faults", timeout=5).status_code == 200
    own = requests.get(f"{emulator.url}/_config/faults", headers={"Origin": emulator.url},
                       timeout=5)
    assert own.status_code == 200 and _cors(own) == {}


def test_the_api_allows_only_the_apps_origin(dev_emulator):
    """RELIABILITY 33: Stripe.js on the shop's pages may call /v1; a page on any other origin
    (another port of the same host included) gets no CORS grant, so its browser refuses."""
    emulator, app_origin = dev_emulator
    url = f"{emulator.url}/v1/payment_methods"
    body = {"key": STRIPE_TEST_PUBLISHABLE_KEY, "type": "card", "card[number]": "4242424242424242",
            "card[exp_month]": "12", "card[exp_year]": "2031", "card[cvc]": "123"}
    allowed = requests.post(url, data=body, headers={"Origin": app_origin}, timeout=5)
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == app_origin
    preflight = requests.options(url, headers={"Origin": app_origin,
                                               "Access-Control-Request-Method": "POST"},
                                 timeout=5)
    assert preflight.headers["Access-Control-Allow-Origin"] == app_origin
    other_port = app_origin.rsplit(":", 1)[0] + f":{free_port()}"
    for origin in (EVIL, other_port, "null"):
        refused = requests.post(url, data=body, headers={"Origin": origin}, timeout=5)
        assert _cors(refused) == {}, origin


def _private(path: Path) -> bool:
    mode = stat.S_IMODE(path.stat().st_mode)
    return mode & 0o077 == 0


def test_instance_files_are_private(monkeypatch, tmp_path):
    """RELIABILITY 33: the instance folder is 0700 and the database, the secret key, the mail
    sink's messages and the logs are 0600, whatever the umask."""
    instance = tmp_path / "instance"
    monkeypatch.setenv("INSTANCE_PATH", str(instance))
    for name in ("SECRET_KEY", "DATABASE_URL", "APP_ENV"):
        monkeypatch.delenv(name, raising=False)
    old_umask = os.umask(0o022)
    try:
        created = create_app({"TESTING": True})
        with created.app_context():
            db.create_all()
            db.engine.dispose()
        sink = MailSink(directory=instance / "mail").start()
        try:
            sink._store("a@example.com", ["b@example.com"], b"Subject: hi\r\n\r\nbody\r\n")
        finally:
            sink.stop()
        emulator = StripeEmulator(log_dir=instance / "logs", data_dir=instance / "stripe")
        emulator.start()
        emulator.stop()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    files = [p for p in instance.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"payments_site.db", "secret_key"} <= names
    assert any(p.suffix == ".eml" for p in files) and any(p.suffix == ".log" for p in files)
    assert [str(p.relative_to(instance)) for p in instance.rglob("*") if not _private(p)] == []
