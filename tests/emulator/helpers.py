"""Shared helpers for the emulator tests: SDK clients, test cards and a webhook receiver."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import stripe

from payments_site.devtools.stack import LOOPBACK_ANY_PORT, ROOT, StripeEmulator
from tests.harness.services import CONTRACT_SCHEMAS, contract_failures, output_dir

SECRET_KEY = "sk_test_emulator"
PUBLISHABLE_KEY = "pk_test_emulator"
WEBHOOK_SECRET = "whsec_test_emulator"


def client(url: str, retries: int = 0, timeout: float = 10) -> stripe.StripeClient:
    """The official SDK pointed at the emulator (no automatic retries unless asked)."""
    return stripe.StripeClient(
        SECRET_KEY, base_addresses={"api": url}, max_network_retries=retries,
        http_client=stripe.RequestsClient(timeout=timeout))


def card(sc: stripe.StripeClient, number: str, **extra: Any) -> stripe.PaymentMethod:
    """A card PaymentMethod created with the secret key."""
    return sc.v1.payment_methods.create(params={
        "type": "card",
        "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        **extra})


def pk_post(url: str, path: str, data: dict[str, str]) -> requests.Response:
    """What Stripe.js does: form POST authenticated by the publishable key in the body."""
    return requests.post(url + path, data={"key": PUBLISHABLE_KEY, **data}, timeout=10)


class WebhookReceiver:
    """A tiny HTTP server on 127.0.0.1 that records every delivery it gets."""

    def __init__(self, fail_first: int = 0) -> None:
        self.deliveries: list[dict[str, Any]] = []
        self.fail_first = fail_first
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    failing = receiver.fail_first > 0
                    if failing:
                        receiver.fail_first -= 1
                    receiver.deliveries.append({
                        "body": body, "signature": self.headers.get("Stripe-Signature"),
                        "status": 500 if failing else 200, "at": time.monotonic()})
                self.send_response(500 if failing else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def register(self, emulator_url: str, name: str = "test", **config: Any) -> None:
        resp = requests.post(f"{emulator_url}/_config/webhooks/{name}",
                             json={"url": self.url, "secret": WEBHOOK_SECRET, **config},
                             timeout=5)
        resp.raise_for_status()

    def events(self, ok_only: bool = True) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(d["body"]) for d in self.deliveries
                    if not ok_only or d["status"] == 200]

    def types(self) -> list[str]:
        return [e["type"] for e in self.events()]

    def wait_for(self, predicate: Any, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until predicate(events) is true; return the events (fail on timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.events()
            if predicate(events):
                return events
            time.sleep(0.05)
        raise AssertionError(f"webhook condition not met; got {self.types()}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_emulator(port: int, *extra: str, cwd: Path | None = None,
                   env: dict[str, str] | None = None) -> StripeEmulator:
    """`python -m stripe_emulator` on 127.0.0.1:`port` as its own process, once it answers,
    checking Stripe's schemas like the suite's own emulator."""
    return StripeEmulator(port=port, log_dir=output_dir(), contract=CONTRACT_SCHEMAS,
                          extra_args=extra, cwd=cwd or ROOT, env=env,
                          allowed_origins=[LOOPBACK_ANY_PORT]).start()


def stop_emulator(emulator: StripeEmulator) -> None:
    """Stop it; fail on any contract violation it saw (see tests/contract/)."""
    failures = contract_failures(emulator.contract_report()) if emulator.running else []
    emulator.stop()
    assert not failures, "Stripe contract violations:\n" + "\n".join(failures)
