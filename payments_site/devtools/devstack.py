"""`make dev`: the whole site offline — embedded Redis, Stripe emulator, SMTP sink, worker, web.

Everything runs on loopback with no Stripe account and no internet. Each piece is the same
one production uses, pointed at a local stand-in through configuration only. Ctrl-C stops
every process started here.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from payments_site.devtools.embedded_redis import EmbeddedRedis
from payments_site.devtools.smtp_sink import MailSink

ROOT = Path(__file__).resolve().parents[2]


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def _kept_secret(path: Path, prefix: str) -> str:
    if path.exists():
        return path.read_text().strip()
    value = prefix + secrets.token_hex(16)
    path.write_text(value)
    path.chmod(0o600)
    return value


class DevStack:
    def __init__(self) -> None:
        self.instance = Path(os.environ.get("INSTANCE_PATH", ROOT / "instance")).resolve()
        self.instance.mkdir(parents=True, exist_ok=True)
        self.web_port = int(os.environ.get("DEV_PORT", "5000"))
        self.emulator_port = int(os.environ.get("DEV_STRIPE_PORT", "8420"))
        self.smtp_port = int(os.environ.get("DEV_SMTP_PORT", "8025"))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.redis: EmbeddedRedis | None = None
        self.mail: MailSink | None = None
        self.env = dict(os.environ)

    # --- pieces ---------------------------------------------------------------------------

    def start_redis(self) -> None:
        if self.env.get("REDIS_URL"):
            return
        self.redis = EmbeddedRedis(self.instance).start()
        self.env["REDIS_URL"] = self.redis.url

    def start_emulator(self) -> None:
        if self.env.get("STRIPE_API_BASE"):
            return  # a real Stripe (test mode) or another emulator is configured
        base = f"http://127.0.0.1:{self.emulator_port}"
        self._spawn("stripe-emulator", [sys.executable, "-m", "stripe_emulator", "--host",
                                        "127.0.0.1", "--port", str(self.emulator_port),
                                        "--data", str(self.instance / "stripe")])
        _wait_http(base + "/js.stripe.com/v3/")
        self.env.update({
            "STRIPE_API_BASE": base,
            "STRIPE_JS_URL": base + "/js.stripe.com/v3/",
            "STRIPE_SECRET_KEY": self.env.get("STRIPE_SECRET_KEY") or "sk_test_offline_dev",
            "STRIPE_PUBLISHABLE_KEY": self.env.get("STRIPE_PUBLISHABLE_KEY")
            or "pk_test_offline_dev",
            "STRIPE_WEBHOOK_SECRET": self.env.get("STRIPE_WEBHOOK_SECRET")
            or _kept_secret(self.instance / "webhook_secret", "whsec_"),
        })

    def start_mail(self) -> None:
        if self.env.get("MAIL_SERVER"):
            return
        self.mail = MailSink(port=self.smtp_port, directory=self.instance / "mail").start()
        self.env.update({"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(self.smtp_port)})

    def migrate_and_seed(self) -> None:
        for args in (["db", "upgrade"], ["seed"]):
            subprocess.run(self._flask(*args), env=self.env, cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL if args[0] == "db" else None)

    def register_webhook(self) -> None:
        """Tell the emulator where to deliver signed events, as the Stripe dashboard would."""
        base = self.env["STRIPE_API_BASE"]
        if not base.startswith("http://127.0.0.1"):
            return
        requests.post(f"{base}/_config/webhooks/dev", json={
            "url": f"http://127.0.0.1:{self.web_port}/api/webhooks/stripe",
            "secret": self.env["STRIPE_WEBHOOK_SECRET"].split(",")[0].strip()}, timeout=5
        ).raise_for_status()

    def start_worker_and_web(self) -> None:
        self._spawn("worker", self._flask("worker"))
        self._spawn("web", self._flask("run", "--host", "127.0.0.1", "--port",
                                       str(self.web_port), "--with-threads"))
        _wait_http(f"http://127.0.0.1:{self.web_port}/healthz")

    # --- plumbing -------------------------------------------------------------------------

    def _flask(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "flask", "--app", "payments_site", *args]

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log_path = self.instance / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        proc = subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(proc)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.mail is not None:
            self.mail.stop()
        if self.redis is not None:
            self.redis.stop()

    def run(self) -> int:
        self.env.setdefault("INSTANCE_PATH", str(self.instance))
        # Links in the emails point at this dev server.
        self.env.setdefault("SITE_URL", f"http://127.0.0.1:{self.web_port}")
        # Stop on Ctrl-C and on SIGTERM alike, even if started where SIGINT was ignored.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            self.start_redis()
            self.start_emulator()
            self.start_mail()
            self.migrate_and_seed()
            self.start_worker_and_web()
            self.register_webhook()
            print(self.banner(), flush=True)
            while all(p.poll() is None for p in self.processes):
                time.sleep(0.5)
            failed = [p.args for p in self.processes if p.poll() is not None]
            print(f"a process stopped: {failed}; logs in {self.instance}/*.log", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nstopping…", flush=True)
            return 0
        finally:
            self.stop()

    def banner(self) -> str:
        url = f"http://127.0.0.1:{self.web_port}/"
        return "\n".join([
            "",
            f"  payments_site is running offline at {url}",
            "",
            "  Demo logins:   customer@example.com / customer-password",
            "                 admin@example.com    / admin-password",
            "  Test cards:    Stripe's test cards (see README: 'Paying in the demo')",
            f"  Sent emails:   {self.instance / 'mail'}/*.eml",
            f"  Logs:          {self.instance}/web.log, worker.log, stripe-emulator.log",
            "",
            "  Press Ctrl-C to stop everything.",
            "",
        ])


def main() -> int:
    return DevStack().run()


if __name__ == "__main__":
    raise SystemExit(main())
