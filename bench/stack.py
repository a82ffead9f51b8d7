"""The processes a benchmark runs against: database, Redis, Stripe emulator, SMTP sink, gunicorn.

PostgreSQL (a fresh `bench_<random>` database, dropped afterwards) and the Redis server on
127.0.0.1 are used when they answer; otherwise a SQLite file and the embedded Redis. Every
process binds to loopback only and is stopped (by its own pid) when the stack closes.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

STRIPE_SECRET_KEY = "sk_test_bench" + "x" * 20
STRIPE_PUBLISHABLE_KEY = "pk_test_bench" + "y" * 20
WEBHOOK_SECRET = "whsec_bench" + "z" * 24
POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL",
                                    "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379

# The same process model for the app and its floor: gthread workers, one per core.
WORKERS = int(os.environ.get("BENCH_WORKERS", str(os.cpu_count() or 2)))
THREADS = int(os.environ.get("BENCH_THREADS", "4"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None
              ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    url: str = ""
    log_path: Path | None = None


@dataclass
class Stack:
    """Everything one benchmark run needs; use as a context manager."""

    require_real: bool = False
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-")))
    backend: str = ""
    database_url: str = ""
    redis_url: str = ""
    services: list[Service] = field(default_factory=list)
    _pg_name: str | None = None
    _redis_claim: tuple[Any, str, int] | None = None
    _embedded_redis: Any = None
    _mail: Any = None
    emulator_url: str = ""
    mail_host: str = ""
    mail_port: int = 0

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Stack:
        try:
            self._start_database()
            self._start_redis()
            self._start_mail()
            self.emulator_url = self.start_emulator()
            self.migrate()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for service in reversed(self.services):
            stop_process(service.proc)
        self.services.clear()
        if self._mail is not None:
            self._mail.stop()
            self._mail = None
        if self._embedded_redis is not None:
            self._embedded_redis.stop()
            self._embedded_redis = None
        if self._redis_claim is not None:
            import redis

            client, token, number = self._redis_claim
            redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number).flushdb()
            key = f"payments_site:bench-db-claim:{number}"
            if client.get(key) == token.encode():
                client.delete(key)
            self._redis_claim = None
        if self._pg_name is not None:
            import psycopg

            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self._pg_name}" WITH (FORCE)')
            self._pg_name = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    # --- services --------------------------------------------------------------------------

    def _start_database(self) -> None:
        if answers("127.0.0.1", 5432):
            import psycopg

            name = f"bench_{secrets.token_hex(5)}"
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            self._pg_name = name
            self.database_url = re.sub(r"/[^/]*$", f"/{name}", POSTGRES_ADMIN_URL)
            self.backend = "postgresql"
            return
        if self.require_real:
            raise RuntimeError("PostgreSQL does not answer on 127.0.0.1:5432")
        self.database_url = f"sqlite:///{self.workdir / 'bench.db'}"
        self.backend = "sqlite"

    def _start_redis(self) -> None:
        if answers(REDIS_HOST, REDIS_PORT):
            import redis

            claim = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0)
            token = secrets.token_hex(8)
            for number in range(15, 0, -1):  # from the top: the tests claim from 1 upwards
                if claim.set(f"payments_site:bench-db-claim:{number}", token, nx=True,
                             ex=3600):
                    self._redis_claim = (claim, token, number)
                    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number).flushdb()
                    self.redis_url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
                    return
            raise RuntimeError("every Redis database number is claimed")
        if self.require_real:
            raise RuntimeError("Redis does not answer on 127.0.0.1:6379")
        from payments_site.devtools.embedded_redis import EmbeddedRedis

        self._embedded_redis = EmbeddedRedis(self.workdir / "redis").start()
        self.redis_url = self._embedded_redis.url

    def _start_mail(self) -> None:
        from payments_site.devtools.smtp_sink import MailSink

        self._mail = MailSink().start()
        self.mail_host, self.mail_port = self._mail.host, self._mail.port

    @property
    def mail_count(self) -> int:
        return len(self._mail.raw) if self._mail is not None else 0

    def start_emulator(self) -> str:
        port = free_port()
        service = self.spawn("stripe-emulator", [sys.executable, "-m", "stripe_emulator",
                                                 "--host", "127.0.0.1", "--port", str(port)])
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/js.stripe.com/v3/", proc=service.proc)
        service.url = url
        return url

    def env(self, **overrides: str) -> dict[str, str]:
        """The app's environment: production settings pointed at the local stand-ins."""
        instance = self.workdir / "instance"
        instance.mkdir(exist_ok=True)
        env = dict(os.environ)
        env.update({
            "APP_ENV": "production",
            "SECRET_KEY": "bench-" + "s" * 42,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "STRIPE_SECRET_KEY": STRIPE_SECRET_KEY,
            "STRIPE_PUBLISHABLE_KEY": STRIPE_PUBLISHABLE_KEY,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_API_BASE": self.emulator_url,
            "STRIPE_JS_URL": f"{self.emulator_url}/js.stripe.com/v3/",
            "MAIL_SERVER": self.mail_host,
            "MAIL_PORT": str(self.mail_port),
            "INSTANCE_PATH": str(instance),
            # Where emails would link to; the bench reads no email links.
            "SITE_URL": "http://127.0.0.1",
            # One bench customer places hundreds of orders a minute; the limiter still runs.
            "PAYMENT_LIMIT": "100000 per minute",
            "REFUND_LIMIT": "100000 per minute",
            "LOG_LEVEL": "WARNING",
            "SERVER_TIMING": "1",
            "PYTHONUNBUFFERED": "1",
            "FLASK_APP": "payments_site",
        })
        env.update(overrides)
        return env

    def migrate(self) -> None:
        result = subprocess.run(self.flask_cmd("db", "upgrade"), cwd=ROOT, env=self.env(),
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"flask db upgrade failed:\n{result.stderr[-2000:]}")

    def flask_cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "flask", "--app", "payments_site", *args]

    def start_gunicorn(self, name: str, target: str, *, workers: int = WORKERS,
                       threads: int = THREADS, env: dict[str, str] | None = None,
                       cpus: set[int] | None = None) -> str:
        """A gunicorn node; `cpus` pins it (master and workers) to those CPUs, as if it had
        a machine of that size to itself."""
        port = free_port()
        cmd = [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers",
               str(workers), "--worker-class", "gthread", "--threads", str(threads),
               "--keep-alive", "5", "--log-level", "warning", target]
        service = self.spawn(name, cmd, env=env or self.env(), cpus=cpus)
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz", proc=service.proc)
        service.url = url
        return url

    def spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None,
              cpus: set[int] | None = None, niceness: int = 0) -> Service:
        """Start a process; `cpus` pins it to those CPUs, `niceness` lowers its priority."""
        log_path = self.workdir / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime

        def place() -> None:
            if cpus:
                os.sched_setaffinity(0, cpus)
            if niceness:
                os.nice(niceness)
                # With autogroup scheduling each session (this is a new one) shares the CPU
                # as one group, whatever its processes' nice: lower the group's too.
                with contextlib.suppress(OSError):
                    Path("/proc/self/autogroup").write_text(str(niceness))

        proc = subprocess.Popen(cmd, cwd=ROOT, env=env or self.env(), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=place if cpus or niceness else None)
        service = Service(name, proc, log_path=log_path)
        self.services.append(service)
        return service

    def stop(self, name: str) -> None:
        for service in list(self.services):
            if service.name == name:
                stop_process(service.proc)
                self.services.remove(service)

    def cpu_seconds(self, name: str) -> float:
        """CPU time (user + system) used so far by a service's process and its children."""
        total = 0.0
        for service in self.services:
            if service.name == name:
                for pid in [service.proc.pid, *_children(service.proc.pid)]:
                    total += _process_cpu(pid)
        return total

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def run_worker_burst(self, queues: str, timeout: float = 300) -> float:
        """Run `flask worker --burst` on `queues`; returns its wall time in seconds."""
        started = time.perf_counter()
        result = subprocess.run(self.flask_cmd("worker", "--burst", "--queues", queues),
                                cwd=ROOT, env=self.env(), capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"flask worker failed: {result.stderr[-1500:]}")
        return time.perf_counter() - started


def processes_named(*names: str) -> list[int]:
    """Process ids whose command name is one of `names` (e.g. the PostgreSQL server's)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in names:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def cpu_of(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by these processes."""
    return sum(_process_cpu(pid) for pid in pids)


def machine_busy_seconds() -> float:
    """Busy CPU seconds since boot, summed over CPUs, from /proc/stat."""
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _process_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop one process we started (its own process group: gunicorn's workers go with it)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, 15)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=5)
