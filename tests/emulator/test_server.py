"""The emulator process itself: binding, auth, persistence under --data, /_config/data."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import requests
import stripe

from payments_site.devtools.stack import ROOT, free_port
from tests.emulator.helpers import (
    PUBLISHABLE_KEY,
    WebhookReceiver,
    client,
    start_emulator,
    stop_emulator,
)


def _listeners(port: int) -> list[tuple[str, str]]:
    """(table, hex local address) of every socket in LISTEN state (0A) on `port`, from the
    kernel's own tables: /proc/net/tcp (IPv4) and /proc/net/tcp6 (IPv6)."""
    found = []
    for table in ("tcp", "tcp6"):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].rpartition(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:
                found.append((table, address))
    return found


def test_binds_only_the_given_host(emulator) -> None:
    """The emulator listens on 127.0.0.1 only (localstripe listened on every interface): the
    kernel lists exactly one listener on its port, 127.0.0.1 (0100007F), with no 0.0.0.0
    (00000000) or IPv6 wildcard; other local addresses refuse the connection.

    https://docs.stripe.com/testing (test mode only; never exposed)
    """
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp")
    port = int(emulator.url.rsplit(":", 1)[1])
    requests.get(f"{emulator.url}/_config/faults", timeout=5).raise_for_status()  # it is up
    assert _listeners(port) == [("tcp", "0100007F")]
    hostname_ips = {ai[4][0] for ai in socket.getaddrinfo(socket.gethostname(), None,
                                                          socket.AF_INET)} - {"127.0.0.1"}
    for ip in hostname_ips:
        if ip.startswith("127."):
            continue
        with socket.socket() as s:
            s.settimeout(0.5)
            assert s.connect_ex((ip, port)) != 0


def test_the_listener_check_sees_a_wildcard_bind() -> None:
    """The /proc check above is able to fail: a socket bound to 0.0.0.0 shows as 00000000.

    https://docs.stripe.com/testing
    """
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp")
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        assert _listeners(s.getsockname()[1]) == [("tcp", "00000000")]


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


def _fresh_dirs(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An empty working directory and TMPDIR for an emulator run from outside the project."""
    cwd, tmpdir = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmpdir.mkdir()
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return cwd, {"TMPDIR": str(tmpdir), "TEMP": str(tmpdir), "TMP": str(tmpdir),
                 "PYTHONPATH": pythonpath}


def _everything_under(*dirs: Path) -> list[str]:
    return sorted(str(p) for d in dirs for p in d.rglob("*"))


def test_memory_only_writes_no_file(tmp_path: Path, receiver: WebhookReceiver) -> None:
    """Without --data nothing is written: after payments, a debit, refunds, webhooks and an
    idempotent retry, the process's working directory and TMPDIR are still empty and
    /tmp/localstripe.pickle (localstripe's default) is untouched.

    https://docs.stripe.com/test-mode (test data lives with the service, not on the client)
    """
    marker = Path("/tmp/localstripe.pickle")
    before = marker.stat().st_mtime if marker.exists() else None
    cwd, env = _fresh_dirs(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_emulator(port, "--processing-delay", "0.1", cwd=cwd, env=env)
    try:
        receiver.register(url)
        sc = client(url)
        cus = sc.v1.customers.create()
        for _ in range(2):  # the second call is an idempotent replay
            pi = sc.v1.payment_intents.create(params={
                "amount": 1000, "currency": "usd", "confirm": True, "customer": cus.id,
                "payment_method": "pm_card_visa"}, options={"idempotency_key": "mem-1"})
        sc.v1.refunds.create(params={"payment_intent": pi.id, "amount": 100})
        sepa = sc.v1.payment_intents.create(params={
            "amount": 1000, "currency": "eur", "confirm": True,
            "payment_method": "pm_success_de"})
        receiver.wait_for(lambda evs: any(e["type"] == "payment_intent.succeeded"
                                          and e["data"]["object"]["id"] == sepa.id
                                          for e in evs))
        requests.delete(f"{url}/_config/data", timeout=5).raise_for_status()
    finally:
        stop_emulator(proc)
    assert _everything_under(cwd, Path(env["TMPDIR"])) == []
    after = marker.stat().st_mtime if marker.exists() else None
    assert before == after


def test_data_dir_persists_and_nothing_in_tmp(tmp_path: Path) -> None:
    """With --data DIR the state survives a restart and only DIR is written (one pickle; the
    working directory and TMPDIR stay empty).

    https://docs.stripe.com/api (objects persist like Stripe's)
    """
    marker = Path("/tmp/localstripe.pickle")
    before = marker.stat().st_mtime if marker.exists() else None
    cwd, env = _fresh_dirs(tmp_path)
    data = tmp_path / "data"
    port = free_port()
    proc = start_emulator(port, "--data", str(data), cwd=cwd, env=env)
    try:
        sc = client(f"http://127.0.0.1:{port}")
        pi = sc.v1.payment_intents.create(params={
            "amount": 1000, "currency": "usd", "confirm": True,
            "payment_method": "pm_card_visa"}, options={"idempotency_key": "persist-1"})
    finally:
        stop_emulator(proc)
    assert [p.name for p in data.iterdir()] == ["stripe_emulator.pickle"]
    proc = start_emulator(port, "--data", str(data), cwd=cwd, env=env)
    try:
        sc = client(f"http://127.0.0.1:{port}")
        assert sc.v1.payment_intents.retrieve(pi.id).status == "succeeded"
        again = sc.v1.payment_intents.create(params={
            "amount": 1000, "currency": "usd", "confirm": True,
            "payment_method": "pm_card_visa"}, options={"idempotency_key": "persist-1"})
        assert again.id == pi.id
    finally:
        stop_emulator(proc)
    assert _everything_under(cwd, Path(env["TMPDIR"])) == []
    after = marker.stat().st_mtime if marker.exists() else None
    assert before == after
