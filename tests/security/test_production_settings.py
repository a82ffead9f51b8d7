"""RELIABILITY 31: production refuses weak or empty secrets, naming every problem at once.

`APP_ENV=production SECRET_KEY=x` used to start (a one-character HS256 key is found from any
issued token in seconds, and then admin tokens can be minted), and so did
`STRIPE_WEBHOOK_SECRET=' , '` (no secret at all).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from payments_site.config import ConfigError, load_config, secret_key_bits
from payments_site.devtools.stack import ROOT

STRONG_KEY = "Vh3-qZ8rT1xW6yL0pN4sK7dJ2fB9mC5gA_eU"  # 36 characters drawn at random
GOOD = {"SECRET_KEY": STRONG_KEY, "STRIPE_SECRET_KEY": "sk_live_x",
        "STRIPE_PUBLISHABLE_KEY": "pk_live_x", "STRIPE_WEBHOOK_SECRET": "whsec_abc123",
        "DATABASE_URL": "postgresql://db/shop", "REDIS_URL": "redis://cache:6379/0",
        "SITE_URL": "https://shop.example.com"}


@pytest.fixture
def production(monkeypatch):
    monkeypatch.setenv("APP_ENV", "production")
    for name, value in GOOD.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_good_production_settings_start(production, tmp_path):
    config = load_config(tmp_path)
    assert config["PRODUCTION"] and config["SECRET_KEY"] == STRONG_KEY
    assert config["STRIPE_WEBHOOK_SECRET"] == ["whsec_abc123"]


@pytest.mark.parametrize("key", ["x", "short-but-random-Zq8", "x" * 40, "ab" * 20,
                                 "password" * 4])
def test_a_weak_secret_key_stops_production(production, tmp_path, key):
    """RELIABILITY 31: shorter than 32 bytes, or long but guessable (one letter repeated, a
    pattern): refused, without printing the key."""
    production.setenv("SECRET_KEY", key)
    with pytest.raises(ConfigError, match="SECRET_KEY is too weak") as refused:
        load_config(tmp_path)
    assert key not in str(refused.value)


@pytest.mark.parametrize("value", [" , ", ",", "sk_test_abc", "whsec_", "whsec_ok, nope"])
def test_an_empty_or_malformed_webhook_secret_list_stops_production(production, tmp_path,
                                                                    value):
    """RELIABILITY 31: no secret at all, or an entry that is not a whsec_… secret."""
    production.setenv("STRIPE_WEBHOOK_SECRET", value)
    with pytest.raises(ConfigError, match="STRIPE_WEBHOOK_SECRET") as refused:
        load_config(tmp_path)
    assert "sk_test_abc" not in str(refused.value)


def test_rotation_lists_of_good_secrets_start(production, tmp_path):
    production.setenv("STRIPE_WEBHOOK_SECRET", "whsec_old1, whsec_new2,")
    assert load_config(tmp_path)["STRIPE_WEBHOOK_SECRET"] == ["whsec_old1", "whsec_new2"]


def test_every_problem_is_named_in_one_message(production, tmp_path):
    """RELIABILITY 31: one start-up, one message, each problem on its own line."""
    production.setenv("SECRET_KEY", "x")
    production.setenv("STRIPE_WEBHOOK_SECRET", " , ")
    production.delenv("REDIS_URL")
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path)
    lines = str(refused.value).splitlines()
    assert lines[0] == "APP_ENV=production cannot start:"
    assert [line.split()[1] for line in lines[1:]] == ["required", "SECRET_KEY",
                                                        "STRIPE_WEBHOOK_SECRET"]
    assert "REDIS_URL" in lines[1]


def test_random_keys_of_32_bytes_pass_the_estimate():
    for key in (secrets.token_hex(16), secrets.token_hex(32), secrets.token_urlsafe(32)):
        assert secret_key_bits(key) >= 128, key
    assert secret_key_bits("x" * 64) == 0


def test_the_server_refuses_to_start_and_says_why(tmp_path):
    """RELIABILITY 31: `gunicorn wsgi:app` (importing wsgi builds the app) with the probe's
    settings exits with the message, not a running site."""
    env = {**os.environ, **GOOD, "APP_ENV": "production", "SECRET_KEY": "x",
           "STRIPE_WEBHOOK_SECRET": " , ", "INSTANCE_PATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "APP_ENV=production cannot start" in result.stderr
    assert "SECRET_KEY is too weak" in result.stderr
    assert "STRIPE_WEBHOOK_SECRET lists no secret" in result.stderr
