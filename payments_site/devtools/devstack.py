"""`make dev`: the whole site offline — embedded Redis, Stripe emulator, SMTP sink, worker, web.

Everything runs on loopback with no Stripe account and no internet. Each piece is the same
one production uses, pointed at a local stand-in through configuration only, and is started
by `devtools.stack` like the tests' and the benchmarks'. Ctrl-C stops every process
started here.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from payments_site.devtools.smtp_sink import MailSink
from payments_site.devtools.stack import (
    ROOT,
    Database,
    RedisDatabase,
    Stack,
    StripeEmulator,
    WebProcess,
    Worker,
    flask_command,
)
from payments_site.metrics import reset_multiprocess_dir
from payments_site.private_files import private_directory, write_private


def _kept_secret(path: Path, prefix: str) -> str:
    if path.exists():
        return path.read_text().strip()
    value = prefix + secrets.token_hex(16)
    write_private(path, value.encode())
    return value


class DevStack:
    """The offline site in `instance/` (or INSTANCE_PATH); anything already configured in
    the environment (DATABASE_URL, REDIS_URL, STRIPE_API_BASE, MAIL_SERVER) is used instead."""

    def __init__(self) -> None:
        self.instance = private_directory(
            Path(os.environ.get("INSTANCE_PATH", ROOT / "instance")).resolve())
        self.web_port = int(os.environ.get("DEV_PORT", "5000"))
        self.emulator_port = int(os.environ.get("DEV_STRIPE_PORT", "8420"))
        self.smtp_port = int(os.environ.get("DEV_SMTP_PORT", "8025"))
        self.env = dict(os.environ)
        self.env.setdefault("INSTANCE_PATH", str(self.instance))
        # Links in the emails point at this dev server.
        self.env.setdefault("SITE_URL", f"http://127.0.0.1:{self.web_port}")
        # One person clicking around: two worker processes, not production's sixteen.
        self.env.setdefault("WORKER_PROCESSES", "2")
        # The web and the worker count their metrics in one directory, emptied at each start,
        # so /metrics (with METRICS_TOKEN set) adds both up.
        self.env["PROMETHEUS_MULTIPROC_DIR"] = str(self.instance / "metrics")
        reset_multiprocess_dir(self.env["PROMETHEUS_MULTIPROC_DIR"])
        self.stack = Stack()
        self.watched: list[subprocess.Popen[bytes]] = []

    def app_origins(self) -> list[str]:
        """The origins the site's pages are served from: the only ones whose Stripe.js may
        call the emulator from a browser."""
        return [f"http://127.0.0.1:{self.web_port}", f"http://localhost:{self.web_port}"]

    # --- pieces ---------------------------------------------------------------------------

    def start_database(self) -> None:
        # Without DATABASE_URL the app uses instance/payments_site.db, the file named here.
        self.stack.add(Database(self.instance, postgres=False,
                                url=self.env.get("DATABASE_URL")))

    def start_redis(self) -> None:
        redis_db = self.stack.add(RedisDatabase(self.instance, server=False,
                                                url=self.env.get("REDIS_URL")))
        self.env["REDIS_URL"] = redis_db.url

    def start_emulator(self) -> None:
        if self.env.get("STRIPE_API_BASE"):
            return  # a real Stripe (test mode) or another emulator is configured
        emulator = self.stack.add(StripeEmulator(
            port=self.emulator_port, log_dir=self.instance, log_name="stripe-emulator.log",
            data_dir=self.instance / "stripe", allowed_origins=self.app_origins()))
        assert emulator.proc is not None
        self.watched.append(emulator.proc)
        self.env.update({
            "STRIPE_API_BASE": emulator.url,
            "STRIPE_JS_URL": emulator.js_url,
            "STRIPE_SECRET_KEY": self.env.get("STRIPE_SECRET_KEY") or "sk_test_offline_dev",
            "STRIPE_PUBLISHABLE_KEY": self.env.get("STRIPE_PUBLISHABLE_KEY")
            or "pk_test_offline_dev",
            "STRIPE_WEBHOOK_SECRET": self.env.get("STRIPE_WEBHOOK_SECRET")
            or _kept_secret(self.instance / "webhook_secret", "whsec_"),
        })
        # Where to deliver signed events, as the Stripe dashboard would be told.
        emulator.register_webhook(
            "dev", f"http://127.0.0.1:{self.web_port}/api/webhooks/stripe",
            self.env["STRIPE_WEBHOOK_SECRET"].split(",")[0].strip())

    def start_mail(self) -> None:
        if self.env.get("MAIL_SERVER"):
            return
        mail = self.stack.add(MailSink(port=self.smtp_port, directory=self.instance / "mail"))
        self.env.update({"MAIL_SERVER": mail.host, "MAIL_PORT": str(mail.port)})

    def migrate_and_seed(self) -> None:
        for args in (["db", "upgrade"], ["seed"]):
            subprocess.run(flask_command(*args), env=self.env, cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL if args[0] == "db" else None)

    def start_worker_and_web(self) -> None:
        worker = self.stack.add(Worker(self.env, self.instance / "worker.log"))
        web = self.stack.add(WebProcess.flask_run(self.env, self.instance / "web.log",
                                                  port=self.web_port))
        for process in (worker, web):
            assert process.proc is not None
            self.watched.append(process.proc)

    # --- running --------------------------------------------------------------------------

    def run(self) -> int:
        # Everything the stack and its processes create (the emulator's data, SQLite's
        # journals, Redis' files) is its owner's only.
        os.umask(0o077)
        # Stop on Ctrl-C and on SIGTERM alike, even if started where SIGINT was ignored.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            self.start_database()
            self.start_redis()
            self.start_emulator()
            self.start_mail()
            self.migrate_and_seed()
            self.start_worker_and_web()
            print(self.banner(), flush=True)
            while all(p.poll() is None for p in self.watched):
                time.sleep(0.5)
            failed = [p.args for p in self.watched if p.poll() is not None]
            print(f"a process stopped: {failed}; logs in {self.instance}/*.log", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nstopping…", flush=True)
            return 0
        finally:
            self.stack.stop()

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
