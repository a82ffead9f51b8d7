"""The emulator process itself: binding, auth, persistence under --data, /_config/data."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import requests
import stripe

from tests._services import ROOT, free_port, wait_for_port
from tests.emulator.helpers import PUBLISHABLE_KEY, client


def _start(port: int, *extra: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "stripe_emulator", "--host", "127.0.0.1",
                             "--port", str(port), *extra], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port("127.0.0.1", port)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=10)


def test_binds_only_the_given_host(emulator) -> None:
    """The emulator listens on 127.0.0.1 only (localstripe listened on every interface).

    https://docs.stripe.com/testing (test mode only; never exposed)
    """
    port = int(emulator.url.rsplit(":", 1)[1])
    out = Path("/proc/net/tcp6").read_text() if Path("/proc/net/tcp6").exists() else ""
    assert f":{port:04X} " not in out  # no IPv6 (::) listener
    hostname_ips = {ai[4][0] for ai in socket.getaddrinfo(socket.gethostname(), None,
                                                          socket.AF_INET)} - {"127.0.0.1"}
    for ip in hostname_ips:
        if ip.startswith("127."):
            continue
        with socket.socket() as s:
            s.settimeout(0.5)
            assert s.connect_ex((ip, port)) != 0


def test_authentication_errors(emulator) -> None:
    """No key or a malformed key → 401; a publishable key can't call secret-key routes.

    https://docs.stripe.com/keys
    """
    url = f"{emulator.url}/v1/payment_intents"
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer nope"},
                        timeout=5).status_code == 401
    resp = requests.get(url, params={"key": PUBLISHABLE_KEY}, timeout=5)
    assert resp.status_code == 401
    assert resp.json()["error"]["type"] == "invalid_request_error"
    try:
        stripe.StripeClient("sk_live_nope", base_addresses={"api": emulator.url}
                            ).v1.customers.list()
        raise AssertionError("live keys must be refused")
    except stripe.AuthenticationError:
        pass


def test_wipe_data(emulator) -> None:
    """DELETE /_config/data removes every object (test isolation).

    https://docs.stripe.com/test-mode
    """
    sc = client(emulator.url)
    sc.v1.customers.create()
    requests.delete(f"{emulator.url}/_config/data", timeout=5).raise_for_status()
    assert sc.v1.customers.list().data == []


def test_data_dir_persists_and_nothing_in_tmp(tmp_path: Path) -> None:
    """With --data DIR the state survives a restart and only DIR is written.

    https://docs.stripe.com/api (objects persist like Stripe's)
    """
    marker = Path("/tmp/localstripe.pickle")
    before = marker.stat().st_mtime if marker.exists() else None
    port = free_port()
    proc = _start(port, "--data", str(tmp_path))
    try:
        sc = client(f"http://127.0.0.1:{port}")
        pi = sc.v1.payment_intents.create(params={
            "amount": 1000, "currency": "usd", "confirm": True,
            "payment_method": "pm_card_visa"}, options={"idempotency_key": "persist-1"})
    finally:
        _stop(proc)
    assert list(tmp_path.iterdir())
    proc = _start(port, "--data", str(tmp_path))
    try:
        sc = client(f"http://127.0.0.1:{port}")
        assert sc.v1.payment_intents.retrieve(pi.id).status == "succeeded"
        again = sc.v1.payment_intents.create(params={
            "amount": 1000, "currency": "usd", "confirm": True,
            "payment_method": "pm_card_visa"}, options={"idempotency_key": "persist-1"})
        assert again.id == pi.id
    finally:
        _stop(proc)
    after = marker.stat().st_mtime if marker.exists() else None
    assert before == after
