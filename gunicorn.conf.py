"""gunicorn settings for payments_site: `gunicorn -c gunicorn.conf.py wsgi:app`.

Every value can be overridden by an environment variable (named beside it); the README's
"Production" section says how to size them from Stripe's latency and the peak number of
concurrent checkouts, and `make bench` / `make bench-cluster` run with this file.

A checkout spends most of its time waiting for Stripe (hundreds of milliseconds per call),
not on the CPU. So each process serves many requests at once: `GUNICORN_WORKER_CONNECTIONS`
greenlets (gevent, the default) or `GUNICORN_THREADS` threads (gthread). Processes stay at
one per CPU: they add CPU, not waiting room. gevent is the default because it kept the
CPU-bound throughput where 32 threads per process lost a tenth to a third of it (the
threads contend for the interpreter lock); `make bench` row 7 measures both.

The database pool of each process follows from the same figures (`DB_POOL_SIZE` and
`DB_MAX_OVERFLOW`, unless set): a request holds a connection only while it runs SQL, never
while it waits for Stripe, so a handful of connections serve all the requests in flight.
"""

from __future__ import annotations

import os
from typing import Any


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, not {value!r}") from None
    if number < 0:
        raise SystemExit(f"{name} cannot be negative")
    return number


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# --- processes and concurrency ---------------------------------------------------------------

bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{_int('PORT', 8000)}")
# WEB_CONCURRENCY is the usual name for the process count (gunicorn reads it too).
workers = _int("WEB_CONCURRENCY", _cpus()) or 1
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent").strip() or "gevent"
# gevent: requests in flight per process (greenlets). 256 keeps a node busy at 300 ms per
# Stripe call far beyond what its CPUs can serve (README, "Sizing").
worker_connections = _int("GUNICORN_WORKER_CONNECTIONS", 256) or 1
# gthread: threads per process (the same role as `worker_connections`); 32 keeps a
# 2-process node busy at 300 ms with 64 customers paying at once.
threads = _int("GUNICORN_THREADS", 32) or 1
# Requests in flight per process, whatever the worker class.
concurrency = worker_connections if worker_class == "gevent" else threads

# --- time limits -----------------------------------------------------------------------------

# A checkout may wait STRIPE_TIMEOUT × (STRIPE_MAX_RETRIES + 1) plus backoff for Stripe
# (10 s × 4 by default): a silent worker is restarted only past that.
timeout = _int("GUNICORN_TIMEOUT", 60)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Seconds an idle client connection stays open: above the load balancer's idle timeout (60 s
# on most), so the balancer, not gunicorn, closes idle connections; otherwise it can send a
# request on a connection gunicorn is closing at that moment (a 502). A busy process can
# also take longer than a few seconds to read a waiting client's next request.
keepalive = _int("GUNICORN_KEEPALIVE", 75)

# --- recycling -------------------------------------------------------------------------------

# A process is replaced after this many requests (0: never), staggered by the jitter so the
# processes of a node do not restart together.
max_requests = _int("GUNICORN_MAX_REQUESTS", 10_000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 1_000)

# --- the load balancer -----------------------------------------------------------------------

# Addresses whose X-Forwarded-Proto/For gunicorn believes (the load balancer's; "*" only
# when nothing else can reach the node). The app reads TRUSTED_PROXIES for the client IP.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# --- logging ---------------------------------------------------------------------------------

loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None  # "-" for stdout
errorlog = "-"

# --- the database pool follows the concurrency -----------------------------------------------

# The app reads DB_POOL_SIZE / DB_MAX_OVERFLOW (payments_site/config.py); unless they are set,
# they follow the requests a process can have in flight. A request holds a connection only
# for its SQL (a few milliseconds; none while it waits for Stripe), so a process needs far
# fewer connections than requests in flight: DB_POOL_MAX kept open, as many again in
# overflow, never more than the concurrency. A request that finds all of them busy waits
# for the next free one (DB_POOL_TIMEOUT, 10 s, is the limit). PostgreSQL's
# max_connections is shared by every process of every node and worker.
# 4: a process runs about one core of Python, and a checkout holds a connection for a few
# milliseconds of its SQL, so 4 kept (and 4 in overflow) are rarely all busy. More only
# make PostgreSQL's backends compete for the same CPUs: on the 2-CPU benchmark node, 8 + 8
# per process served the 64-customer spike at ~85 checkouts/s with no added latency where
# 4 + 4 served ~120/s (bench/README.md, "Connections per process and worker class").
pool_max = _int("DB_POOL_MAX", 4) or 1
os.environ.setdefault("DB_POOL_SIZE", str(min(concurrency, pool_max)))
# (at least 2 over: a request may briefly hold a second one for a one-statement write)
os.environ.setdefault("DB_MAX_OVERFLOW",
                      str(max(2, min(concurrency - min(concurrency, pool_max), pool_max))))


# --- hooks -----------------------------------------------------------------------------------

def child_exit(server: Any, worker: Any) -> None:
    """A worker process ended (restarted by max_requests, or died).

    Its metrics stay counted and its live gauges are dropped (prometheus_client's
    multiprocess mode). Imported here, in the master only when a worker ends: importing the
    app at the top of this file would load it (and ssl) in the master before a gevent worker
    patches them.
    """
    from payments_site.metrics import mark_process_dead

    mark_process_dead(worker.pid)
