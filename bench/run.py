"""`make bench`: the app against its floors, one table, written to bench/results/ and README.md.

Usage: python -m bench.run [--quick] [--only 1,2,...]
A row whose feature is not built yet prints "n/a (reason)"; nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime

from bench import scenarios, spike
from bench.appside import AppSide
from bench.report import (
    BENCH_DIR,
    RESULTS_DIR,
    Report,
    plot_latency_vs_load,
    update_readme,
    write_results,
)
from bench.scenarios import Bench, Sizes
from bench.stack import SHIPPED, Stack, describe_config

ROOT_README = BENCH_DIR.parent / "README.md"

STEPS: list[tuple[str, str, Callable[[Bench], None]]] = [
    ("2", "webhook ingest", scenarios.webhook_ingest),
    ("1", "checkout", scenarios.checkout),
    ("4", "receipts", scenarios.receipts),
    ("5", "worker", scenarios.worker_queues),
    ("7", "spike", lambda b: None),  # its results feed the knee plot and the burst
    ("8", "webhook burst", lambda b: None),
    ("3", "history at scale", scenarios.history),
    ("7", "admin overview at scale", scenarios.admin_overview),
    ("6", "mixed load", lambda b: None),  # run last, with a worker beside the web node
]


def sizes_for(backend: str, quick: bool) -> Sizes:
    sizes = Sizes()
    if backend == "sqlite":
        # One writer and no COPY: a smaller table keeps the run under ten minutes.
        sizes.history_total_rows = 50_000
    if quick:
        sizes.rounds = 3
        sizes.checkout_per_round = 8
        sizes.webhook_seconds = 2.0
        sizes.history_total_rows = min(sizes.history_total_rows, 20_000)
        sizes.history_large = 2_000
        sizes.history_per_round = 8
        sizes.receipt_downloads_per_round = 10
        sizes.worker_webhook_jobs = 50
        sizes.load_steps = (1, 4, 16)
        sizes.load_seconds = 3.0
        sizes.spike_steps = (8, 64, 256)
        sizes.spike_seconds = 4.0
        sizes.knee_seconds = 3.0
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--only", default="", help="comma-separated row numbers to run")
    parser.add_argument("--no-readme", action="store_true",
                        help="do not update README.md's latest figures")
    args = parser.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    started = time.perf_counter()

    with Stack() as stack:
        sizes = sizes_for(stack.backend, args.quick)
        report = Report(f"payments_site benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        redis_kind = "server" if stack.redis_url.startswith("redis://") else "embedded"
        report.sizes.append(f"{stack.backend} + Redis ({redis_kind}), "
                            f"gunicorn.conf.py: {describe_config(SHIPPED)}, "
                            f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
        report.sizes += sizes.describe()
        if stack.backend == "sqlite":
            report.notes.append("PostgreSQL was not reachable: SQLite, with the history table "
                                f"scaled down to {sizes.history_total_rows:,} rows.")
        floor_files = stack.workdir / "floor-files"
        floor_files.mkdir()
        print(f"starting app and floor ({stack.backend}) …", flush=True)
        app_url = stack.start_gunicorn("app", "wsgi:app")
        floor_url = stack.start_gunicorn("floor", "bench.floor_app:app",
                                         env=stack.env(BENCH_FLOOR_FILES=str(floor_files)))
        side = AppSide(stack)
        bench = Bench(stack, side, report, sizes, app_url, floor_url, floor_files)
        bench.products = side.create_products()
        bench.customers = [side.create_customer(f"buyer{i}") for i in range(5)]
        commit_ms = side.commit_latency_ms()
        if commit_ms is not None:
            report.notes.append(f"PostgreSQL commit (WAL flush) on this machine: "
                                f"{commit_ms:.1f} ms median")
        load_before = os.getloadavg()[0]
        spiked = spike.SpikeResults()
        burst: dict[str, float] = {}

        for key, name, step in STEPS:
            if only and key not in only:
                continue
            print(f"[{time.perf_counter() - started:5.0f} s] row {key}: {name} …", flush=True)
            try:
                # Rows share numbers (7: the spike and the admin overview): steps are told
                # apart by name.
                if name == "mixed load":
                    _mixed_load_with_worker(bench)
                elif name == "spike":
                    spiked = spike.spike(bench)
                    report.notes.append(f"load average (1 min) after the spike: "
                                        f"{os.getloadavg()[0]:.1f}")
                elif name == "webhook burst":
                    burst = spike.webhook_burst(bench, spiked.intents)
                elif name == "checkout":
                    step(bench)
                    spike.profile_checkout(bench)
                else:
                    step(bench)
            except Exception as error:  # noqa: BLE001 - one broken row must not hide the rest
                traceback.print_exc()
                report.unavailable(key, name, f"failed: {error.__class__.__name__}: "
                                   f"{str(error)[:120]}")
                print(stack.log_tail("app", 15), file=sys.stderr)
        report.rows.sort(key=lambda r: r.key)
        report.notes.append(f"load average (1 min) {load_before:.1f} at the start, "
                            f"{os.getloadavg()[0]:.1f} at the end: other work on the machine "
                            "inflates absolute figures; ratios are taken side by side")
        report.notes.append(f"whole run {time.perf_counter() - started:.0f} s; the load "
                            "generator runs on the same machine and shares its CPUs")

    print()
    print(report.terminal())
    path = write_results(report)
    chart = plot_latency_vs_load(report.load_steps, RESULTS_DIR / "latency_vs_load.png",
                                 title="Mixed customer load, one node")
    knee = spike.plot_knee(spiked.points, RESULTS_DIR / "knee.png")
    if knee:
        chart = f"{chart}, {knee}" if chart else knee
    if not args.no_readme and not only:
        update_readme(report)
        spike.update_sizing(ROOT_README, spike.sizing_figures(spiked, burst, report.title))
    print(f"\nwritten: {path}" + (f", {chart}" if chart else ""))
    return 0


def _mixed_load_with_worker(bench: Bench) -> None:
    """The load test runs with a worker beside the web node, as in production."""
    worker = bench.stack.spawn("worker", bench.stack.flask_cmd("worker"))
    try:
        scenarios.mixed_load(bench)
    finally:
        from bench.stack import stop_process

        stop_process(worker.proc)


if __name__ == "__main__":
    raise SystemExit(main())
