"""MERCHANT_TIMEZONE and SITE_URL: checked at start-up, with an error that names the setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from payments_site import create_app
from payments_site.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]


def test_merchant_timezone_defaults_to_utc(monkeypatch, tmp_path):
    monkeypatch.delenv("MERCHANT_TIMEZONE", raising=False)
    assert load_config(tmp_path)["MERCHANT_TIMEZONE"] == "UTC"


def test_merchant_timezone_takes_an_iana_name(monkeypatch, tmp_path):
    monkeypatch.setenv("MERCHANT_TIMEZONE", " America/New_York ")
    assert load_config(tmp_path)["MERCHANT_TIMEZONE"] == "America/New_York"


def test_a_blank_merchant_timezone_is_the_default(monkeypatch, tmp_path):
    monkeypatch.setenv("MERCHANT_TIMEZONE", "   ")
    assert load_config(tmp_path)["MERCHANT_TIMEZONE"] == "UTC"


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "EST+5", "America/New York",
                                  "../../etc/passwd", "/usr/share/zoneinfo/UTC"])
def test_a_bad_merchant_timezone_stops_start_up_with_a_clear_error(monkeypatch, tmp_path, name):
    monkeypatch.setenv("MERCHANT_TIMEZONE", name)
    with pytest.raises(ConfigError, match=r"MERCHANT_TIMEZONE=.* is not a known IANA time "
                                          r"zone name"):
        load_config(tmp_path)


@pytest.mark.parametrize("name", ["Atlantis/Capital", "Europe/Berlin\x00", "", None])
def test_a_bad_timezone_given_to_the_factory_is_refused_too(app, name):
    config = {k: v for k, v in app.config.items() if k.isupper() and k != "SERVER_NAME"}
    config["MERCHANT_TIMEZONE"] = name
    with pytest.raises(ConfigError, match="MERCHANT_TIMEZONE"):
        create_app(config)


def test_the_flask_command_refuses_to_start_with_a_bad_timezone(tmp_path):
    env = {**os.environ, "MERCHANT_TIMEZONE": "Europe/Atlantis", "INSTANCE_PATH": str(tmp_path),
           "APP_ENV": "development"}
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "payments_site", "routes"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "MERCHANT_TIMEZONE='Europe/Atlantis' is not a known IANA time zone name" \
        in result.stderr


def test_site_url_defaults_to_the_dev_server_and_loses_its_trailing_slash(monkeypatch,
                                                                          tmp_path):
    monkeypatch.delenv("SITE_URL", raising=False)
    assert load_config(tmp_path)["SITE_URL"] == "http://127.0.0.1:5000"
    monkeypatch.setenv("SITE_URL", "https://shop.example.com/store/")
    assert load_config(tmp_path)["SITE_URL"] == "https://shop.example.com/store"


@pytest.mark.parametrize("url", ["shop.example.com", "ftp://shop.example.com",
                                 "https://", "https://shop.example.com:port",
                                 "https://shop.example.com/?a=1", "https://u:p@shop.example.com",
                                 "javascript:alert(1)"])
def test_a_bad_site_url_stops_start_up(monkeypatch, tmp_path, url):
    monkeypatch.setenv("SITE_URL", url)
    with pytest.raises(ConfigError, match="SITE_URL must be the site's public address"):
        load_config(tmp_path)


def test_production_requires_site_url(monkeypatch, tmp_path):
    monkeypatch.setenv("APP_ENV", "production")
    for name, value in {"SECRET_KEY": "7Kq2-vX9mPz4LwR8nYt3bHc6JdF1gS5aEuQ0",
                        "STRIPE_SECRET_KEY": "sk_x",
                        "STRIPE_PUBLISHABLE_KEY": "pk_x", "STRIPE_WEBHOOK_SECRET": "whsec_x",
                        "DATABASE_URL": "postgresql://db/x", "REDIS_URL": "redis://r"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SITE_URL", raising=False)
    with pytest.raises(ConfigError, match="SITE_URL"):
        load_config(tmp_path)
    monkeypatch.setenv("SITE_URL", "https://shop.example.com")
    assert load_config(tmp_path)["SITE_URL"] == "https://shop.example.com"
