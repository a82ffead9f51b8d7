"""The Stripe latency mode, the traffic spike, the knee plot and the webhook burst.

Real Stripe answers in hundreds of milliseconds; the emulator in a few. In the latency mode
the emulator holds every `/v1` call for `STRIPE_LATENCY_MS` (default 300 ms) ± a sixth of
it (a `delay_s` + `jitter_s` fault), for the app and its floors alike.

- The spike: closed-loop customers (no think time) each paying for a new cart with a new
  card (`POST /api/payments/process`: the payment row, one PaymentIntent create), against
  the shipped gunicorn.conf.py and against the settings before it (2 gthread processes per
  node's CPUs × 4 threads), with and without the added latency, step by step up to 256
  customers. The CPU-bound capacity is the old settings' throughput with no added latency
  at 64 customers; the shipped configuration must hold 0.8× of it at 300 ms latency.
- The knee plot: p50/p99 latency against the number of customers, for both configurations
  and both latency modes, on one picture.
- The webhook burst: 1,000 signed `payment_intent.succeeded` events at once, at 300 ms
  latency, applied by the shipped worker configuration (`flask worker`, WORKER_PROCESSES
  processes); then RELIABILITY's invariants.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib.util
import os
import random
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.appside import Customer
from bench.load import LoadResult, run_load
from bench.report import Row, fmt_ratio
from bench.scenarios import Bench, _sign, auth, cart, event_body
from bench.stack import BASELINE, SHIPPED, Stack, describe_config, server_config

LATENCY_MS = float(os.environ.get("BENCH_STRIPE_LATENCY_MS", "300"))
JITTER_MS = LATENCY_MS / 6
SPIKE_CLIENTS = 64
BURST_EVENTS = int(os.environ.get("BENCH_BURST_EVENTS", "1000"))


@contextlib.contextmanager
def stripe_latency(stack: Stack, latency_ms: float = LATENCY_MS,
                   jitter_ms: float = JITTER_MS) -> Iterator[None]:
    """Every `/v1` call waits `latency_ms` ± `jitter_ms` at the emulator while inside."""
    if latency_ms <= 0:
        yield
        return
    stack.emulator.add_fault(path_prefix="/v1", status=None, delay_s=latency_ms / 1000,
                             jitter_s=jitter_ms / 1000, times=10**9)
    try:
        yield
    finally:
        stack.emulator.clear_faults()


@dataclass
class Node:
    label: str
    settings: dict[str, str]
    name: str
    url: str = ""


@dataclass
class Point:
    """One load step: a configuration, a latency mode, a number of customers."""

    node: str
    latency_ms: float
    clients: int
    throughput: float
    p50_ms: float
    p99_ms: float
    errors: int
    count: int


@dataclass
class SpikeResults:
    points: list[Point] = field(default_factory=list)
    intents: list[tuple[str, str]] = field(default_factory=list)  # (payment, intent) ids
    failures: Counter[str] = field(default_factory=Counter)  # why requests failed
    memory_mib: dict[str, float] = field(default_factory=dict)
    pool_timeouts: dict[str, int] = field(default_factory=dict)

    def at(self, node: str, latency_ms: float, clients: int) -> Point | None:
        for point in self.points:
            if (point.node, point.latency_ms, point.clients) == (node, latency_ms, clients):
                return point
        return None


def _nodes() -> list[Node]:
    nodes = [Node("before (2×4 gthread)", BASELINE, "spike-before"),
             Node("shipped", SHIPPED, "spike-shipped")]
    shipped_class = server_config(SHIPPED)["worker_class"]
    if shipped_class != "gevent" and importlib.util.find_spec("gevent") is not None:
        nodes.append(Node("gevent", {**SHIPPED, "GUNICORN_WORKER_CLASS": "gevent"},
                          "spike-gevent"))
    if shipped_class != "gthread":
        nodes.append(Node("gthread", {**SHIPPED, "GUNICORN_WORKER_CLASS": "gthread"},
                          "spike-gthread"))
    return nodes


def spike_customers(b: Bench, count: int) -> list[Customer]:
    """Customers of their own for the spike (a customer's checkouts take turns by design)."""
    have: list[Customer] = getattr(b, "spike_customers", [])
    if len(have) < count:
        labels = [f"spike{i}" for i in range(len(have), count)]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:  # the password KDF is slow
            have += pool.map(lambda label: b.side.create_customer(label, with_card=False),
                             labels)
    b.spike_customers = have  # type: ignore[attr-defined]
    return have


def new_card_checkout(b: Bench, url: str, customers: list[Customer],
                      intents: list[tuple[str, str]] | None = None,
                      failures: Counter[str] | None = None,
                      ) -> Callable[[requests.Session, int], tuple[bool, Any]]:
    """A closed-loop client: each thread is one customer, paying for a new cart each time."""
    mine = threading.local()
    taken = iter(range(10**9))
    lock = threading.Lock()
    base = random.randrange(10**6) + 500_000

    def call(session: requests.Session, seq: int) -> tuple[bool, Any]:
        if not hasattr(mine, "customer"):
            with lock:
                mine.customer = customers[next(taken) % len(customers)]
        customer: Customer = mine.customer
        try:
            response = session.post(f"{url}/api/payments/process", timeout=60,
                                    json={"items": cart(base + seq, b.products)},
                                    headers={**auth(customer.token),
                                             "Idempotency-Key": secrets.token_hex(16)})
        except requests.RequestException as error:
            if failures is not None:
                failures[type(error).__name__] += 1
            raise
        ok = response.status_code == 201 and bool(response.json().get("client_secret"))
        if not ok and failures is not None:
            failures[f"HTTP {response.status_code}"] += 1
        if ok and intents is not None:
            payment = response.json()["payment"]
            intents.append((payment["id"], payment["stripe_payment_intent_id"]))
        return ok, None

    return call


def _pool_timeouts(stack: Stack, name: str) -> int:
    path = stack.workdir / f"{name}.log"
    if not path.exists():
        return 0
    return len(re.findall(r"QueuePool limit|TimeoutError", path.read_text(errors="replace")))


def spike(b: Bench) -> SpikeResults:
    """The spike sweep: every configuration × latency mode at each step, side by side."""
    results = SpikeResults()
    nodes = _nodes()
    customers = spike_customers(b, max(b.sizes.spike_steps))
    sweep = {"before (2×4 gthread)", "shipped"}
    top = max(b.sizes.spike_steps)
    for clients in b.sizes.spike_steps:
        for node in nodes:
            if node.label not in sweep and clients != SPIKE_CLIENTS:
                continue  # the other worker classes: at the spike only
            # One node at a time (started fresh for each step), so the database's
            # connections are never shared between configurations.
            node.url = b.stack.start_gunicorn(node.name, "wsgi:app", settings=node.settings)
            try:
                for latency in (0.0, LATENCY_MS):
                    seconds = b.sizes.spike_seconds if clients == SPIKE_CLIENTS \
                        else b.sizes.knee_seconds
                    with stripe_latency(b.stack, latency):
                        failed: Counter[str] = Counter()
                        result = run_load(new_card_checkout(b, node.url, customers,
                                                            results.intents, failed),
                                          concurrency=clients, duration=seconds,
                                          max_requests=100_000, warmup=1)
                    results.points.append(_point(node.label, latency, clients, result))
                    print(f"    {node.label:22} {latency:4.0f} ms {clients:4} clients: "
                          f"{result.throughput:6.1f}/s p50 {result.p(50):7.1f} "
                          f"p99 {result.p(99):7.1f} errors {result.errors} "
                          f"{dict(failed) if failed else ''}", flush=True)
                    for reason, n in failed.items():
                        results.failures[f"{node.label}, {latency:.0f} ms, {clients} "
                                         f"clients: {reason}"] += n
                if clients == top:
                    results.memory_mib[node.label] = b.stack.memory_mib(node.name)
            finally:
                b.stack.stop(node.name)
    for node in nodes:  # each node's log holds all its steps
        results.pool_timeouts[node.label] = _pool_timeouts(b.stack, node.name)
    _spike_rows(b, nodes, results)
    if results.failures:
        b.report.notes.append("spike failures: " + "; ".join(
            f"{k} ×{n}" for k, n in results.failures.items()))
    return results


def _point(label: str, latency: float, clients: int, result: LoadResult) -> Point:
    return Point(label, latency, clients, result.throughput, result.p(50), result.p(99),
                 result.errors, result.count)


def _spike_rows(b: Bench, nodes: list[Node], r: SpikeResults) -> None:
    key = "7"
    report = b.report
    capacity = r.at("before (2×4 gthread)", 0.0, SPIKE_CLIENTS)
    held = r.at("shipped", LATENCY_MS, SPIKE_CLIENTS)
    shipped_fast = r.at("shipped", 0.0, SPIKE_CLIENTS)
    before_held = r.at("before (2×4 gthread)", LATENCY_MS, SPIKE_CLIENTS)
    if capacity is None or held is None or shipped_fast is None or before_held is None:
        report.unavailable(key, "Spike", "not measured")
        return
    lat = f"{LATENCY_MS:.0f} ms"
    ratio = held.throughput / capacity.throughput
    report.add(Row(key, f"Spike: {SPIKE_CLIENTS} customers paying at once (new card) at {lat} "
                   "Stripe latency, shipped config, vs the CPU-bound capacity (no added "
                   "latency, 2×4 gthread)", f"{held.throughput:.1f}/s",
                   f"{capacity.throughput:.1f}/s", fmt_ratio(ratio), "≥ 0.8×", ratio >= 0.8,
                   note=describe_config(SHIPPED)))
    spread = held.p99_ms / held.p50_ms if held.p50_ms else float("nan")
    report.add(Row(key, f"Spike at {lat}, shipped: p99 vs p50 (no request starves); errors",
                   f"p99 {held.p99_ms:.0f} ms", f"p50 {held.p50_ms:.0f} ms", fmt_ratio(spread),
                   "≤ 2×, 0 errors", spread <= 2 and held.errors == 0,
                   note=f"{held.errors} errors of {held.count + held.errors}"))
    fast = shipped_fast.throughput / capacity.throughput
    report.add(Row(key, "Spike with no added latency: shipped config vs the CPU-bound capacity",
                   f"{shipped_fast.throughput:.1f}/s", f"{capacity.throughput:.1f}/s",
                   fmt_ratio(fast), "≥ 0.9×", fast >= 0.9,
                   note=f"p99 {shipped_fast.p99_ms:.0f} ms, {shipped_fast.errors} errors"))
    report.add(Row(key, f"Spike at {lat} with the settings before (2×4 gthread) vs the "
                   "CPU-bound capacity", f"{before_held.throughput:.1f}/s",
                   f"{capacity.throughput:.1f}/s",
                   fmt_ratio(before_held.throughput / capacity.throughput), "", None,
                   note=f"p50/p99 {before_held.p50_ms:.0f}/{before_held.p99_ms:.0f} ms"))
    for node in nodes:
        if node.label in ("shipped", "before (2×4 gthread)"):
            continue
        slow, quick = r.at(node.label, LATENCY_MS, SPIKE_CLIENTS), \
            r.at(node.label, 0.0, SPIKE_CLIENTS)
        if slow is None or quick is None:
            continue
        report.add(Row(key, f"Spike, {describe_config(node.settings)}: at {lat} / with no "
                       "added latency, vs the CPU-bound capacity",
                       f"{slow.throughput:.1f}/s / {quick.throughput:.1f}/s",
                       f"{capacity.throughput:.1f}/s",
                       f"{slow.throughput / capacity.throughput:.2f}× / "
                       f"{quick.throughput / capacity.throughput:.2f}×", "compared", None,
                       note=f"at {lat} p50/p99 {slow.p50_ms:.0f}/{slow.p99_ms:.0f} ms, "
                            f"{slow.errors + quick.errors} errors"))
    top = max(b.sizes.spike_steps)
    big = r.at("shipped", LATENCY_MS, top)
    if big is not None:
        memory = ", ".join(f"{label} {mib:.0f} MiB" for label, mib in r.memory_mib.items())
        timeouts = r.pool_timeouts.get("shipped", 0)
        report.add(Row(key, f"Spike: {top} customers at {lat}, shipped: errors / database "
                       "pool timeouts; memory per node (PSS, master + workers)",
                       f"{big.errors} / {timeouts}",
                       f"{r.memory_mib.get('shipped', 0):.0f} MiB",
                       "", "0 / 0", big.errors == 0 and timeouts == 0,
                       note=f"{big.throughput:.1f}/s, p50/p99 {big.p50_ms:.0f}/"
                            f"{big.p99_ms:.0f} ms; memory: {memory}"))


# --- the knee plot -------------------------------------------------------------------------------

def plot_knee(points: list[Point], path: Path) -> Path | None:
    """p50 and p99 against customers, one line per configuration × latency mode."""
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5), dpi=110)
    colors = {"before (2×4 gthread)": "tab:red", "shipped": "tab:blue"}
    for (label, latency), style in (((lbl, lat), "-" if lat else "--")
                                    for lbl in colors for lat in (0.0, LATENCY_MS)):
        series = sorted((p for p in points if p.node == label and p.latency_ms == latency),
                        key=lambda p: p.clients)
        if not series:
            continue
        xs = [p.clients for p in series]
        name = f"{label}, {'+' + format(latency, '.0f') + ' ms' if latency else 'no added'}" \
               " Stripe latency"
        ax.plot(xs, [p.p99_ms for p in series], style, marker="o", color=colors[label],
                label=f"p99, {name}")
        ax.plot(xs, [p.p50_ms for p in series], style, marker=".", color=colors[label],
                alpha=0.5, label=f"p50, {name}")
        ax2.plot(xs, [p.throughput for p in series], style, marker="s", color=colors[label],
                 label=name)
    for axis in (ax, ax2):
        axis.set_xscale("log", base=2)
        ticks = sorted({p.clients for p in points})
        axis.set_xticks(ticks, [str(t) for t in ticks])
        axis.set_xlabel("customers paying at once (closed loop, offered load)")
        axis.grid(True, alpha=0.3)
    ax.set_yscale("log")
    ax.set_ylabel("checkout latency (ms, log scale)")
    ax.set_title("Latency against load")
    ax.legend(fontsize=7)
    ax2.set_ylabel("checkouts per second")
    ax2.set_title("Throughput: where each configuration saturates")
    ax2.legend(fontsize=7)
    fig.suptitle("New-card checkout under a spike, one node (2 CPUs)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


# --- the webhook burst ---------------------------------------------------------------------------

def webhook_burst(b: Bench, intents: list[tuple[str, str]]) -> dict[str, float]:
    """BURST_EVENTS signed payment_intent.succeeded events at once at LATENCY_MS; the shipped
    worker (`flask worker`, WORKER_PROCESSES processes) applies them; then the invariants."""
    from bench.cluster import _check_invariants, _wait_for_quiet

    key = "8"
    processes = int(b.stack.env().get("WORKER_PROCESSES") or 0) or \
        int(b.side.app.config["WORKER_PROCESSES"])
    intents = _intents_for_burst(b, intents)
    chosen = intents[:BURST_EVENTS]
    _confirm_at_stripe(b, [intent for _, intent in chosen])
    b.side.empty_queue("webhooks")
    url = f"{b.app_url}/api/webhooks/stripe"
    prefix = f"evt_bench_burst_{secrets.token_hex(3)}_"
    bodies = [event_body(f"{prefix}{i}", intent) for i, (_, intent) in enumerate(chosen)]
    b.stack.spawn("burst-worker", b.stack.flask_cmd("worker"))
    try:
        with stripe_latency(b.stack):
            _wait_for_workers(b, processes)
            started = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(64) as pool:
                statuses = list(pool.map(lambda body: _deliver(url, body), bodies))
            acked = time.perf_counter() - started
            done = _wait_applied(b, [p for p, _ in chosen], timeout=600)
            applied = time.perf_counter() - started
            memory = b.stack.memory_mib("burst-worker")
        # Receipts rendered and emailed, with no added latency, before the invariants.
        drained = _wait_for_quiet(b.side, timeout=300)
    finally:
        b.stack.stop("burst-worker")
    ideal = len(chosen) * LATENCY_MS / 1000 / processes
    refused = sum(1 for s in statuses if s != 200)
    b.report.add(Row(key, f"Webhook burst: {len(chosen):,} signed events at once at "
                     f"{LATENCY_MS:.0f} ms Stripe latency, time until every payment row is "
                     "applied and its receipt queued (shipped worker: `flask worker`, "
                     f"{processes} processes)", f"{applied:.1f} s",
                     f"ideal {ideal:.1f} s (events × latency ÷ {processes})",
                     fmt_ratio(applied / ideal), "< 60 s", done and applied < 60,
                     note=f"all acknowledged in {acked:.1f} s, {refused} not 200; "
                          f"{'all' if done else 'NOT all'} applied"))
    before = len(b.report.rows)
    _check_invariants(b, b.report, 0, drained)
    for row in b.report.rows[before:]:
        row.key = key
        row.measure = "After the burst: " + row.measure
    b.report.notes.append(f"webhook burst: worker memory {memory:.0f} MiB (PSS, "
                          f"{processes} processes and their supervisor)")
    return {"events": len(chosen), "seconds": applied, "processes": processes,
            "ideal": ideal, "memory_mib": memory}


def _intents_for_burst(b: Bench, intents: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """New-card payments whose intents nobody confirmed yet (topped up by new checkouts)."""
    unique = list(dict(intents).items())
    if len(unique) >= BURST_EVENTS:
        return unique
    more: list[tuple[str, str]] = []
    customers = spike_customers(b, 16)
    call = new_card_checkout(b, b.app_url, customers, more)
    run_load(call, concurrency=16, duration=300, max_requests=BURST_EVENTS - len(unique))
    return unique + more


def _confirm_at_stripe(b: Bench, intent_ids: list[str]) -> None:
    """What the customers' browsers do with Stripe.js: confirm each intent with a card."""
    sdk = b.side.sdk

    def confirm(intent_id: str) -> None:
        sdk.v1.payment_intents.confirm(intent_id, {"payment_method": "pm_card_visa"})

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(confirm, intent_ids))


def _deliver(url: str, body: bytes) -> int:
    try:
        return requests.post(url, data=body, timeout=60, headers={
            "Stripe-Signature": _sign(body), "Content-Type": "application/json"}).status_code
    except requests.RequestException:
        return 0


def _wait_for_workers(b: Bench, count: int, timeout: float = 60) -> None:
    from rq import Worker

    from payments_site.queues import get_redis

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with b.side.context():
            if len(Worker.all(connection=get_redis())) >= count:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{count} workers did not start within {timeout:.0f} s")


def _wait_applied(b: Bench, payment_ids: list[str], timeout: float) -> bool:
    """Until every payment is succeeded (its receipt job is queued in the same step)."""
    from sqlalchemy import func, select

    from payments_site.models import Payment

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with b.side.context() as db:
            done = db.session.scalar(select(func.count()).select_from(Payment).where(
                Payment.public_id.in_(payment_ids), Payment.status == "succeeded")) or 0
        if done >= len(payment_ids):
            return True
        time.sleep(0.1)
    return False


# --- where the checkout's own time goes ----------------------------------------------------------

def profile_checkout(b: Bench, count: int = 60) -> Path | None:
    """Profile new-card and saved-card checkouts in-process (pyinstrument, the `bench` extra)
    and save the report under bench/results/: where the app's own time goes."""
    from bench.report import RESULTS_DIR

    try:
        from pyinstrument import Profiler
    except ImportError:
        b.report.notes.append("checkout profile: pyinstrument is not installed")
        return None
    customer = b.customers[0]
    client = b.side.app.test_client()
    headers = auth(customer.token)
    base = random.randrange(10**6) + 900_000

    def pay(seq: int, saved: bool) -> None:
        body: dict[str, Any] = {"items": cart(base + seq, b.products)}
        if saved:
            body["payment_method_id"] = customer.payment_method_id
        response = client.post("/api/payments/process", json=body, headers={
            **headers, "Idempotency-Key": secrets.token_hex(16)})
        if response.status_code != 201:
            raise RuntimeError(f"checkout answered {response.status_code}")

    for seq in range(5):  # warm
        pay(seq, True)
        pay(seq + 5, False)
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for seq in range(count):
        pay(100 + seq, True)
        pay(100 + count + seq, False)
    profiler.stop()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    text = RESULTS_DIR / "checkout_profile.txt"
    text.write_text(profiler.output_text(unicode=True, color=False, show_all=False))
    (RESULTS_DIR / "checkout_profile.html").write_text(profiler.output_html())
    b.report.notes.append(f"checkout profile ({count} saved-card + {count} new-card "
                          "checkouts in-process, pyinstrument): bench/results/"
                          "checkout_profile.txt and .html")
    return text


# --- the figures the README's sizing section quotes ----------------------------------------------

SIZING_START = "<!-- sizing-figures:start -->"
SIZING_END = "<!-- sizing-figures:end -->"


def sizing_figures(r: SpikeResults, burst: dict[str, float], when: str) -> list[str]:
    """The measured figures behind the README's formula, from one run."""
    lines: list[str] = []
    cpus = int(server_config(BASELINE)["workers"])
    capacity = r.at("before (2×4 gthread)", 0.0, SPIKE_CLIENTS)
    held = r.at("shipped", LATENCY_MS, SPIKE_CLIENTS)
    before = r.at("before (2×4 gthread)", LATENCY_MS, SPIKE_CLIENTS)
    if capacity is None or held is None or before is None:
        return lines
    c_ms = cpus / capacity.throughput * 1000
    r_s = LATENCY_MS / 1000 + c_ms / 1000
    lines += [
        f"- CPU capacity of a {cpus}-CPU node, new-card checkouts (the settings before, no "
        f"added latency, {SPIKE_CLIENTS} customers): X = {capacity.throughput:.0f}/s, so "
        f"c ≈ {cpus} ÷ X = {c_ms:.0f} ms of machine time per checkout (everything on one "
        "machine: app, database, Redis, emulator and load generator share the CPUs).",
        f"- At L = {LATENCY_MS:.0f} ms: R ≈ {r_s * 1000:.0f} ms, N = X × R ≈ "
        f"{capacity.throughput * r_s:.0f} requests in flight; the shipped "
        f"{describe_config(SHIPPED)} holds {held.throughput:.0f}/s "
        f"({held.throughput / capacity.throughput:.2f}× X, p50 {held.p50_ms:.0f} ms, p99 "
        f"{held.p99_ms:.0f} ms); the settings before (2 × 4 threads) "
        f"{before.throughput:.0f}/s ({before.throughput / capacity.throughput:.2f}× X, p50 "
        f"{before.p50_ms:.0f} ms).",
    ]
    top = max(p.clients for p in r.points)
    big = r.at("shipped", LATENCY_MS, top)
    if big is not None:
        lines.append(f"- {top} customers at once at {LATENCY_MS:.0f} ms: {big.throughput:.0f}/s, "
                     f"p50 {big.p50_ms / 1000:.1f} s ≈ {top} ÷ X, {big.errors} errors, "
                     f"{r.pool_timeouts.get('shipped', 0)} pool timeouts; node memory "
                     f"{r.memory_mib.get('shipped', 0):.0f} MiB (PSS, master + workers; "
                     f"{r.memory_mib.get('before (2×4 gthread)', 0):.0f} MiB with 4 threads).")
    if burst:
        lines.append(f"- Webhook burst: {burst['events']:.0f} events at {LATENCY_MS:.0f} ms "
                     f"applied in {burst['seconds']:.0f} s by {burst['processes']:.0f} worker "
                     f"processes (ideal {burst['ideal']:.0f} s; "
                     f"{burst['memory_mib']:.0f} MiB for the worker).")
    lines.append(f"- Measured {when}; load average {os.getloadavg()[0]:.1f} at the end (the "
                 "machine was shared: absolute figures are low, ratios are side by side).")
    return lines


def update_sizing(readme: Path, lines: list[str]) -> None:
    if not lines or not readme.exists():
        return
    text = readme.read_text()
    pattern = re.compile(re.escape(SIZING_START) + ".*?" + re.escape(SIZING_END), re.S)
    block = SIZING_START + "\n" + "\n".join(lines) + "\n" + SIZING_END
    if pattern.search(text):
        readme.write_text(pattern.sub(lambda _m: block, text))
