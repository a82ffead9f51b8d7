"""A small concurrent load generator: threads with their own HTTP session, bounded in count/time."""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

# A request function gets the thread's session and a global sequence number, performs one
# request and returns (ok, extra): `extra` is kept per request (e.g. Server-Timing figures).
RequestFn = Callable[[requests.Session, int], tuple[bool, Any]]


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of `values`; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    clean = [v for v in values if not math.isnan(v)]
    return statistics.median(clean) if clean else math.nan


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    extras: list[Any] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0
    tags: Counter[str] = field(default_factory=Counter)

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.count / self.elapsed if self.elapsed > 0 else 0.0

    def p(self, pct: float) -> float:
        """Latency percentile in milliseconds."""
        return percentile(self.latencies, pct) * 1000


def run_load(fn: RequestFn, *, concurrency: int, duration: float, max_requests: int,
             warmup: int = 0) -> LoadResult:
    """Run `fn` from `concurrency` threads until `duration` seconds or `max_requests` pass."""
    result = LoadResult()
    lock = threading.Lock()
    counter = iter(range(10**9))
    start_gate = threading.Barrier(concurrency + 1)

    def worker() -> None:
        session = requests.Session()
        for _ in range(warmup):
            with lock:
                seq = next(counter)
            try:
                fn(session, seq)
            except requests.RequestException:
                pass
        start_gate.wait()
        deadline = time.perf_counter() + duration
        while time.perf_counter() < deadline:
            with lock:
                seq = next(counter)
                if result.count + result.errors >= max_requests:
                    break
            started = time.perf_counter()
            try:
                ok, extra = fn(session, seq)
            except requests.RequestException:
                ok, extra = False, None
            took = time.perf_counter() - started
            with lock:
                if ok:
                    result.latencies.append(took)
                    result.extras.append(extra)
                else:
                    result.errors += 1
        session.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    # Warm-up requests finish before the clock starts.
    start_gate.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join(timeout=duration + 60)
    result.elapsed = time.perf_counter() - started
    return result


def run_sequential(fn: Callable[[int], tuple[bool, Any]], count: int) -> LoadResult:
    """`count` calls one after another (latency, not throughput)."""
    result = LoadResult()
    started_all = time.perf_counter()
    for seq in range(count):
        started = time.perf_counter()
        try:
            ok, extra = fn(seq)
        except Exception:  # noqa: BLE001 - an error is counted, not fatal to the run
            ok, extra = False, None
        took = time.perf_counter() - started
        if ok:
            result.latencies.append(took)
            result.extras.append(extra)
        else:
            result.errors += 1
    result.elapsed = time.perf_counter() - started_all
    return result
