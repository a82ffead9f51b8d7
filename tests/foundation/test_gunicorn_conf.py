"""gunicorn.conf.py: every value from the environment, and the database pool following it."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from payments_site.devtools.stack import ROOT, free_port, wait_http

CONF = ROOT / "gunicorn.conf.py"
SETTINGS = ("WEB_CONCURRENCY", "GUNICORN_WORKER_CLASS", "GUNICORN_THREADS",
            "GUNICORN_WORKER_CONNECTIONS", "GUNICORN_TIMEOUT", "GUNICORN_GRACEFUL_TIMEOUT",
            "GUNICORN_KEEPALIVE", "GUNICORN_MAX_REQUESTS", "GUNICORN_MAX_REQUESTS_JITTER",
            "FORWARDED_ALLOW_IPS", "GUNICORN_BIND", "PORT", "DB_POOL_SIZE", "DB_MAX_OVERFLOW",
            "DB_POOL_MAX")


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """The settings gunicorn reads from the file under this environment."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    conf = runpy.run_path(str(CONF))
    conf["pool"] = (int(os.environ["DB_POOL_SIZE"]), int(os.environ["DB_MAX_OVERFLOW"]))
    return conf


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = load(monkeypatch)
    assert conf["workers"] == len(os.sched_getaffinity(0))
    assert conf["worker_class"] == "gevent" and conf["worker_connections"] == 256
    assert conf["concurrency"] == 256 and conf["threads"] == 32
    assert (conf["timeout"], conf["graceful_timeout"], conf["keepalive"]) == (60, 30, 75)
    assert (conf["max_requests"], conf["max_requests_jitter"]) == (10_000, 1_000)
    assert conf["forwarded_allow_ips"] == "127.0.0.1,::1"
    assert conf["bind"] == "0.0.0.0:8000"
    # 256 greenlets: 4 connections kept, 4 in overflow (requests hold one only for their SQL).
    assert conf["pool"] == (4, 4)
    assert callable(conf["child_exit"])


def test_every_value_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = load(monkeypatch, WEB_CONCURRENCY="3", GUNICORN_THREADS="12", GUNICORN_TIMEOUT="90",
                GUNICORN_GRACEFUL_TIMEOUT="20", GUNICORN_KEEPALIVE="15",
                GUNICORN_MAX_REQUESTS="500", GUNICORN_MAX_REQUESTS_JITTER="50",
                FORWARDED_ALLOW_IPS="10.0.0.5", PORT="9000", DB_POOL_MAX="6")
    assert (conf["workers"], conf["threads"], conf["timeout"]) == (3, 12, 90)
    assert (conf["graceful_timeout"], conf["keepalive"]) == (20, 15)
    assert (conf["max_requests"], conf["max_requests_jitter"]) == (500, 50)
    assert conf["forwarded_allow_ips"] == "10.0.0.5" and conf["bind"] == "0.0.0.0:9000"
    assert conf["pool"] == (6, 6)


def test_pool_follows_the_concurrency_and_explicit_sizes_win(
        monkeypatch: pytest.MonkeyPatch) -> None:
    threads = load(monkeypatch, GUNICORN_WORKER_CLASS="gthread", GUNICORN_THREADS="3")
    assert threads["concurrency"] == 3 and threads["pool"] == (3, 2)  # never above 3 + 2
    gevent = load(monkeypatch, GUNICORN_WORKER_CONNECTIONS="100")
    assert gevent["concurrency"] == 100 and gevent["pool"] == (4, 4)
    assert load(monkeypatch, DB_POOL_SIZE="3", DB_MAX_OVERFLOW="1")["pool"] == (3, 1)


@pytest.mark.parametrize(("name", "value"), [("GUNICORN_THREADS", "many"),
                                             ("WEB_CONCURRENCY", "-1"),
                                             ("GUNICORN_TIMEOUT", "1.5")])
def test_a_wrong_value_stops_start_up_naming_it(monkeypatch: pytest.MonkeyPatch, name: str,
                                                value: str) -> None:
    with pytest.raises(SystemExit, match=name):
        load(monkeypatch, **{name: value})


def test_gunicorn_serves_the_app_with_it(tmp_path: Path) -> None:
    """The file as gunicorn reads it: a node starts with it and answers."""
    port = free_port()
    env = {**os.environ, "WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "2",
           "GUNICORN_BIND": f"127.0.0.1:{port}", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
           "INSTANCE_PATH": str(tmp_path)}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-c", str(CONF),
                             "wsgi:app"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
