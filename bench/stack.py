"""The processes a benchmark runs against: database, Redis, Stripe emulator, SMTP sink, gunicorn.

Every part is started by `payments_site.devtools.stack`, like `make dev`'s and the tests':
PostgreSQL (a fresh `bench_<random>` database, dropped afterwards) and the Redis server on
127.0.0.1 are used when they answer; otherwise a SQLite file and the embedded Redis. Every
process binds to loopback only and is stopped (by its own process group) when the stack
closes.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from payments_site.devtools.smtp_sink import MailSink
from payments_site.devtools.stack import (
    ROOT,
    Database,
    Process,
    RedisDatabase,
    StripeEmulator,
    WebProcess,
    app_environment,
    flask_command,
)
from payments_site.devtools.stack import Stack as Parts

STRIPE_SECRET_KEY = "sk_test_bench" + "x" * 20
STRIPE_PUBLISHABLE_KEY = "pk_test_bench" + "y" * 20
WEBHOOK_SECRET = "whsec_bench" + "z" * 24
# Production start-up refuses a guessable key: one random key per run, shared by every node.
SECRET_KEY = secrets.token_urlsafe(48)
POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL",
                                    "postgresql://postgres@127.0.0.1:5432/postgres")

CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
    (os.cpu_count() or 1)

# Server configurations, as environment overrides of the shipped gunicorn.conf.py. The app
# and its floor always run under the same one.
# SHIPPED: gunicorn.conf.py as it is (BENCH_WORKERS / BENCH_THREADS / BENCH_WORKER_CLASS
# change it for an experiment).
SHIPPED: dict[str, str] = {name: os.environ[var] for name, var in (
    ("WEB_CONCURRENCY", "BENCH_WORKERS"), ("GUNICORN_THREADS", "BENCH_THREADS"),
    ("GUNICORN_WORKER_CLASS", "BENCH_WORKER_CLASS")) if os.environ.get(var)}
# BASELINE: the settings before gunicorn.conf.py (one gthread process per CPU × 4 threads),
# whose throughput with no added latency is the CPU-bound capacity the spike is held to.
BASELINE: dict[str, str] = {"WEB_CONCURRENCY": str(CPUS), "GUNICORN_THREADS": "4",
                            "GUNICORN_WORKER_CLASS": "gthread", "DB_POOL_SIZE": "5",
                            "DB_MAX_OVERFLOW": "5"}


def server_config(settings: dict[str, str]) -> dict[str, str]:
    """What gunicorn.conf.py resolves to under these overrides (workers, class, threads,
    pool), read by loading the file as gunicorn does."""
    saved = dict(os.environ)
    try:
        for name in ("WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_WORKER_CLASS",
                     "GUNICORN_WORKER_CONNECTIONS", "DB_POOL_SIZE", "DB_MAX_OVERFLOW"):
            os.environ.pop(name, None)
        os.environ.update(settings)
        conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
        return {"workers": str(conf["workers"]), "worker_class": conf["worker_class"],
                "concurrency": str(conf["concurrency"]),
                "pool": f"{os.environ['DB_POOL_SIZE']}+{os.environ['DB_MAX_OVERFLOW']}"}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def describe_config(settings: dict[str, str]) -> str:
    """"2 gthread × 32" style label for a configuration."""
    conf = server_config(settings)
    unit = "threads" if conf["worker_class"] == "gthread" else "greenlets"
    return (f"{conf['workers']} {conf['worker_class']} processes × {conf['concurrency']} "
            f"{unit}, DB pool {conf['pool']} per process")


@dataclass
class Stack:
    """Everything one benchmark run needs; use as a context manager."""

    require_real: bool = False
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-")))
    services: list[Process] = field(default_factory=list)
    parts: Parts = field(default_factory=Parts)

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Stack:
        try:
            real = True if self.require_real else None
            self.database = self.parts.add(Database(
                self.workdir, name_prefix="bench", postgres=real, admin_url=POSTGRES_ADMIN_URL))
            self.redis = self.parts.add(RedisDatabase(self.workdir / "redis", server=real))
            self.mail = self.parts.add(MailSink())
            self.emulator = self.parts.add(StripeEmulator(log_dir=self.workdir))
            self.database.migrate(self.env())
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.services.clear()
        self.parts.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # --- what the parts are ----------------------------------------------------------------

    @property
    def backend(self) -> str:
        return self.database.backend

    @property
    def database_url(self) -> str:
        return self.database.url

    @property
    def redis_url(self) -> str:
        return self.redis.url

    @property
    def emulator_url(self) -> str:
        return self.emulator.url

    @property
    def mail_count(self) -> int:
        return len(self.mail.raw)

    def env(self, **overrides: str) -> dict[str, str]:
        """The app's environment: production settings pointed at the local stand-ins."""
        return app_environment(
            database=self.database, redis_db=self.redis, emulator=self.emulator,
            mail=self.mail, instance=self.workdir / "instance",
            stripe_secret_key=STRIPE_SECRET_KEY, stripe_publishable_key=STRIPE_PUBLISHABLE_KEY,
            webhook_secret=WEBHOOK_SECRET, **{
                "APP_ENV": "production",
                "SECRET_KEY": SECRET_KEY,
                # Where emails would link to; the bench reads no email links.
                "SITE_URL": "http://127.0.0.1",
                # One bench customer places hundreds of orders a minute; the limiter still runs.
                "PAYMENT_LIMIT": "100000 per minute",
                "REFUND_LIMIT": "100000 per minute",
                "LOG_LEVEL": "WARNING",
                "SERVER_TIMING": "1",
                **overrides})

    # --- processes -------------------------------------------------------------------------

    def flask_cmd(self, *args: str) -> list[str]:
        return flask_command(*args)

    def start_gunicorn(self, name: str, target: str, *, settings: dict[str, str] | None = None,
                       env: dict[str, str] | None = None, cpus: set[int] | None = None) -> str:
        """A gunicorn node under gunicorn.conf.py with `settings` as its overrides (default:
        the shipped configuration); `cpus` pins it (master and workers) to those CPUs, as if
        it had a machine of that size to itself."""
        node = WebProcess.gunicorn(name, target, env or self.env(),
                                   self.workdir / f"{name}.log",
                                   settings=SHIPPED if settings is None else settings,
                                   preexec=_placement(cpus, 0))
        node.start_timeout = 120.0  # other work on the machine can slow start-up a lot
        self.services.append(node)
        node.start()
        return node.url

    def pids(self, name: str) -> list[int]:
        """A service's process and its children (gunicorn's or the worker's processes)."""
        return [pid for service in self._processes(name) if service.proc is not None
                for pid in [service.proc.pid, *_descendants(service.proc.pid)]]

    def memory_mib(self, name: str) -> float:
        """Memory of a service (its process and children) in MiB: the proportional set size,
        so pages forked processes share are counted once."""
        return sum(_pss_kib(pid) for pid in self.pids(name)) / 1024

    def spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None,
              cpus: set[int] | None = None, niceness: int = 0) -> Process:
        """Start a process; `cpus` pins it to those CPUs, `niceness` lowers its priority."""
        process = Process(name, cmd, log_path=self.workdir / f"{name}.log",
                          env=env or self.env(), cwd=ROOT, preexec=_placement(cpus, niceness))
        self.services.append(process)
        return process.start()

    def stop(self, name: str) -> None:
        for service in list(self.services):
            if service.name == name:
                service.stop()
                self.services.remove(service)

    def _processes(self, name: str) -> list[Process]:
        named = [s for s in self.services if s.name == name]
        if name == self.emulator.name:
            named.append(self.emulator)
        return named

    def cpu_seconds(self, name: str) -> float:
        """CPU time (user + system) used so far by a service's process and its children."""
        total = 0.0
        for service in self._processes(name):
            if service.proc is not None:
                for pid in [service.proc.pid, *_children(service.proc.pid)]:
                    total += _process_cpu(pid)
        return total

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def run_worker_burst(self, queues: str, timeout: float = 300) -> float:
        """Run one `flask worker --burst` process on `queues`; returns its wall time in s."""
        started = time.perf_counter()
        result = subprocess.run(self.flask_cmd("worker", "--burst", "--processes", "1",
                                               "--queues", queues),
                                cwd=ROOT, env=self.env(), capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"flask worker failed: {result.stderr[-1500:]}")
        return time.perf_counter() - started


def _placement(cpus: set[int] | None, niceness: int) -> Callable[[], None] | None:
    """What a child runs before it starts: pin it to `cpus`, lower its priority."""
    if not cpus and not niceness:
        return None

    def place() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)
        if niceness:
            os.nice(niceness)
            # With autogroup scheduling each session (this is a new one) shares the CPU
            # as one group, whatever its processes' nice: lower the group's too.
            with contextlib.suppress(OSError):
                Path("/proc/self/autogroup").write_text(str(niceness))

    return place


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


def _descendants(pid: int) -> list[int]:
    found = []
    for child in _children(pid):
        found += [child, *_descendants(child)]
    return found


def _pss_kib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0


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
